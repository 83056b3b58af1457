// Live video's decisions, pure: how to stay at the live edge of a MediaSource buffer, what a close code means,
// and how long to wait before reconnecting.

export interface Range {
  start: number;
  end: number;
}

/** What to do to the player after an append: seek (null: stay), start playing, drop buffer before a time. */
export interface EdgeAction {
  seek: number | null;
  play: boolean;
  removeBefore: number | null;
}

export const MAX_BEHIND_S = 1.0; // further behind the newest frame than this: jump ahead
export const EDGE_S = 0.2; // where a jump lands, before the newest frame
export const KEEP_S = 10; // buffer kept behind the playhead
const TRIM_EVERY_S = 5; // and dropped in pieces of at least this, not on every append

/** Follow the live edge: play the newest buffered range, at most MAX_BEHIND_S behind its end; keep KEEP_S of
 * buffer behind the playhead (a live view never goes back; the browser's quota would fill in minutes). */
export function followLiveEdge(buffered: Range[], currentTime: number, paused: boolean): EdgeAction {
  if (!buffered.length) return { seek: null, play: false, removeBefore: null };
  const newest = buffered[buffered.length - 1];
  const inNewest = currentTime >= newest.start && currentTime <= newest.end;
  let seek: number | null = null;
  if (!inNewest || newest.end - currentTime > MAX_BEHIND_S) seek = Math.max(newest.start, newest.end - EDGE_S);
  const at = seek ?? currentTime;
  const oldest = buffered[0].start;
  const removeBefore = at - oldest > KEEP_S + TRIM_EVERY_S ? at - KEEP_S : null;
  return { seek, play: paused, removeBefore };
}

/** Seconds before reconnect attempt `attempt` (0 for the first): 0.5, 1, 2, 4, 8, then 10. */
export const reconnectDelayS = (attempt: number) => Math.min(10, 0.5 * 2 ** Math.max(0, attempt));

/** What a closed live socket means for the viewer, and whether reconnecting can help. */
export function closeOutcome(code: number, reason: string): { message: string; retry: boolean; login: boolean } {
  switch (code) {
    case 4404:
      return { message: "No such camera.", retry: false, login: false };
    case 4408:
      return { message: "The camera is not sending video; trying again…", retry: true, login: false };
    case 1008:
      return { message: reason || "Not logged in.", retry: false, login: true };
    case 4429:
      return { message: "The connection was too slow to keep up; reconnecting…", retry: true, login: false };
    default:
      return { message: "Live video interrupted; reconnecting…", retry: true, login: false };
  }
}

/** Whether this browser plays the stream's codec in MediaSource (Chromium and Firefox do not decode H.265). */
export function playable(mime: string, isTypeSupported: (mime: string) => boolean): boolean {
  try {
    return isTypeSupported(mime);
  } catch {
    return false;
  }
}
