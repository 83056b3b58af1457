// Recorded playback's decisions, pure: which window of `vod/windows` holds a moment, where a wall time is on a
// playlist's timeline (its segments back to back, gaps taking no time), the incident before or after the
// playhead, and when to get the next window ready.

import type { Clock, Interval } from "./timeline";
import { clockLabel, dayLabel, momentLabel } from "./timeline";

/** One window of GET /cameras/byname/<name>/vod/windows (times Unix seconds; `playlist` a path from the root). */
export interface VodWindow {
  start: number;
  end: number;
  chunks: number;
  footage_s: number;
  last_chunk_end: number;
  playlist: string;
}

export interface WindowsAnswer {
  camera: string;
  start: number;
  end: number;
  window_s: number;
  windows: VodWindow[];
  truncated: boolean;
  next_start: number | null;
}

/** A playlist segment as the player placed it: its position on the playlist's timeline (seconds from the
 * playlist's start, the EXTINFs before it), its EXTINF, and its PROGRAM-DATE-TIME (Unix seconds). */
export interface PlacedSegment {
  position: number;
  duration: number;
  wall: number;
}

/** Where playback of a moment starts: the position on the playlist's timeline, the wall time there, and whether
 * that is the moment asked for (false: the moment has no footage and playback starts at the next that has). */
export interface Placement {
  position: number;
  wall: number;
  exact: boolean;
}

/** Segments from EXTINFs and PROGRAM-DATE-TIMEs in playlist order: positions are the EXTINFs summed. */
export function placeSegments(entries: { duration: number; wall: number }[]): PlacedSegment[] {
  let position = 0;
  return entries.map(({ duration, wall }) => {
    const placed = { position, duration, wall };
    position += duration;
    return placed;
  });
}

/** Where wall time `t` plays in a playlist: inside a segment, its position plus the time into it; in a gap (a
 * discontinuity) or before the first segment, the start of the next segment; after the last, null. */
export function placeIn(segments: PlacedSegment[], t: number): Placement | null {
  for (const segment of segments) {
    if (t < segment.wall) return { position: segment.position, wall: segment.wall, exact: false };
    if (t < segment.wall + segment.duration) return { position: segment.position + (t - segment.wall), wall: t, exact: true };
  }
  return null;
}

/** The wall time at a position on a playlist's timeline (null outside its segments). */
export function wallAt(segments: PlacedSegment[], position: number): number | null {
  for (const segment of segments) {
    if (position >= segment.position && position < segment.position + segment.duration) {
      return segment.wall + (position - segment.position);
    }
  }
  return null;
}

/** The window that holds `t`, or the first after it that has footage (windows in time order); null: none. */
export const windowFor = (windows: VodWindow[], t: number): VodWindow | null =>
  windows.find((window) => window.end > t) ?? null;

/** "no footage at 14:03:00, playing from 14:05:40" when playback starts later than asked (a second's slack:
 * chunks start on keyframes); null when it starts where asked. */
export function laterNotice(asked: number, playing: number, clock: Clock): string | null {
  if (playing - asked < 1) return null;
  const sameDay = dayLabel(asked, clock) === dayLabel(playing, clock);
  const from = sameDay ? clockLabel(playing, clock) : momentLabel(playing, clock);
  return `no footage at ${clockLabel(asked, clock)}, playing from ${from}`;
}

/** The first incident starting more than `slack` seconds after `t`. */
export function nextIncident<T extends Interval>(incidents: T[], t: number, slack = 1): T | null {
  let best: T | null = null;
  for (const incident of incidents) {
    if (incident.start > t + slack && (best === null || incident.start < best.start)) best = incident;
  }
  return best;
}

/** The last incident starting more than `slack` seconds before `t` (so pressing it again goes further back). */
export function previousIncident<T extends Interval>(incidents: T[], t: number, slack = 3): T | null {
  let best: T | null = null;
  for (const incident of incidents) {
    if (incident.start < t - slack && (best === null || incident.start > best.start)) best = incident;
  }
  return best;
}

/** A clip of an incident: from 5 s before it to 5 s after it. */
export const clipAround = (incident: Interval, pad = 5): Interval => ({ start: incident.start - pad, end: incident.end + pad });

/** The selection between two moments, in order, at least a second long. */
export function rangeBetween(a: number, b: number): Interval {
  const start = Math.min(a, b);
  return { start, end: Math.max(a, b, start + 1) };
}

export const RATES = [1, 2, 4, 8] as const;
export type Rate = (typeof RATES)[number];

/** Whether to get the next window ready: the current window's time is over (before that, its growing playlist
 * gets the chunks as they land, nothing else has any), and the end of what its playlist lists is within 15 s of
 * playing (at the playback rate: 8x plays 15 s in under 2). */
export const shouldPrefetch = (remainingS: number, rate: number, windowOver: boolean) =>
  windowOver && remainingS <= 15 * Math.max(1, rate);

/** Where the next window is asked from: just after the end of the last segment the current playlist lists (not
 * the window's end: a chunk that starts before a window's end belongs to it, and would be listed again by a
 * playlist starting at that end; and chunks a growing playlist has not listed yet are then the next window's).
 * A playlist lists chunks overlapping its range, and PROGRAM-DATE-TIME + EXTINF, both in milliseconds, can fall
 * a hair short of the stored end: 0.1 s later keeps the last chunk out and is far less than any chunk. */
export const nextWindowFrom = (segments: PlacedSegment[], windowEnd: number) => {
  const last = segments[segments.length - 1];
  return last ? last.wall + last.duration + 0.1 : windowEnd;
};

/** Whether to move on to the ready next window: playback reached the wall time it starts at (the current
 * playlist may have grown past it since), or the end of what the current playlist lists. */
export const shouldSwap = (remainingS: number, playing: number, nextStart: number) =>
  remainingS <= 0.3 || playing >= nextStart - 0.05;
