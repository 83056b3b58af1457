import { describe, expect, it } from "vitest";
import {
  clipAround, laterNotice, nextIncident, placeIn, placeSegments, previousIncident, rangeBetween, shouldPrefetch, shouldSwap,
  nextWindowFrom, wallAt,
  windowFor, type VodWindow,
} from "./playback";
import { zoneClock } from "./timeline";

const utc = (iso: string) => Date.parse(iso) / 1000;
const berlin = zoneClock("Europe/Berlin");

// Three 2 s chunks, a 6 s gap (a discontinuity), two more chunks, as a playlist lists them.
const T0 = utc("2026-11-27T12:59:56Z");
const segments = placeSegments([
  { duration: 2, wall: T0 },
  { duration: 2, wall: T0 + 2 },
  { duration: 2, wall: T0 + 4 },
  { duration: 2, wall: T0 + 12 },
  { duration: 1.5, wall: T0 + 14 },
]);

describe("wall time on a playlist's timeline", () => {
  it("positions are the EXTINFs summed: the gap takes no time", () => {
    expect(segments.map((s) => s.position)).toEqual([0, 2, 4, 6, 8]);
  });

  it.each([
    [T0, { position: 0, wall: T0, exact: true }],
    [T0 + 3.25, { position: 3.25, wall: T0 + 3.25, exact: true }], // across the hour boundary (13:00:00 UTC)
    [T0 + 6, { position: 6, wall: T0 + 12, exact: false }], // the gap starts: play from the next chunk
    [T0 + 9.5, { position: 6, wall: T0 + 12, exact: false }],
    [T0 + 12.5, { position: 6.5, wall: T0 + 12.5, exact: true }],
    [T0 - 30, { position: 0, wall: T0, exact: false }], // before the first chunk
    [T0 + 15.4, { position: 9.4, wall: T0 + 15.4, exact: true }],
  ])("%d plays at %j", (t, placement) => {
    const placed = placeIn(segments, t)!;
    expect(placed.position).toBeCloseTo(placement.position, 6); // Unix seconds in doubles: microseconds
    expect(placed.wall).toBeCloseTo(placement.wall, 6);
    expect(placed.exact).toBe(placement.exact);
  });

  it("after the last segment: not in this playlist", () => {
    expect(placeIn(segments, T0 + 15.5)).toBeNull();
    expect(placeIn([], T0)).toBeNull();
  });

  it("and back: the wall time at a position", () => {
    expect(wallAt(segments, 5)).toBeCloseTo(T0 + 5, 9);
    expect(wallAt(segments, 6)).toBe(T0 + 12);
    expect(wallAt(segments, 9.5)).toBeNull();
  });

  it("scrubbing a month back lands to the millisecond", () => {
    const far = placeSegments(Array.from({ length: 1800 }, (_, n) => ({ duration: 2, wall: T0 - 30 * 86_400 + n * 2 })));
    const t = T0 - 30 * 86_400 + 3599.123;
    expect(placeIn(far, t)!.position).toBeCloseTo(3599.123, 6);
  });
});

describe("windows", () => {
  const window = (start: number, end: number): VodWindow => ({
    start, end, chunks: 1, footage_s: end - start, last_chunk_end: end, playlist: `/p?start=${start}&end=${end}`,
  });
  const hours = [window(3600, 7200), window(7300, 10_800), window(18_000, 21_600)];
  it.each([
    [3600, 3600],
    [7199.9, 3600],
    [7200, 7300], // on the boundary: the next hour
    [12_000, 18_000], // in hours without footage: the next window that has some
    [21_600, null],
  ])("moment %d is in the window from %s", (t, start) => {
    expect(windowFor(hours, t)?.start ?? null).toBe(start);
  });
});

describe("notices", () => {
  it.each([
    [utc("2026-11-27T13:03:00Z"), utc("2026-11-27T13:05:40Z"), "no footage at 14:03:00, playing from 14:05:40"],
    [utc("2026-11-27T13:03:00Z"), utc("2026-11-27T13:03:00.6Z"), null],
    [utc("2026-11-27T22:59:00Z"), utc("2026-11-28T06:00:00Z"), "no footage at 23:59:00, playing from Sat 28 Nov 07:00:00"],
  ])("asked %d, playing %d: %s", (asked, playing, notice) => {
    expect(laterNotice(asked, playing, berlin)).toBe(notice);
  });
});

describe("incidents", () => {
  const incidents = [{ start: 100, end: 110 }, { start: 50, end: 52 }, { start: 300, end: 320 }];
  it.each([
    [0, 50, null],
    [50, 100, null],
    [54, 100, 50],
    [105, 300, 100],
    [400, null, 300],
  ])("at %d: next %s, previous %s", (t, next, previous) => {
    expect(nextIncident(incidents, t)?.start ?? null).toBe(next);
    expect(previousIncident(incidents, t)?.start ?? null).toBe(previous);
  });

  it("a clip of an incident pads 5 s either side; a selection is ordered", () => {
    expect(clipAround({ start: 100, end: 110 })).toEqual({ start: 95, end: 115 });
    expect(rangeBetween(200, 150)).toEqual({ start: 150, end: 200 });
    expect(rangeBetween(150, 150)).toEqual({ start: 150, end: 151 });
  });

  it("the next window is made ready 15 s of playing before the end, once the current window is over", () => {
    expect(shouldPrefetch(14, 1, true)).toBe(true);
    expect(shouldPrefetch(16, 1, true)).toBe(false);
    expect(shouldPrefetch(100, 8, true)).toBe(true);
    expect(shouldPrefetch(1, 1, false)).toBe(false); // the current hour: its own playlist grows
  });

  it.each([
    [0.1, 100, 200, true], // at the end of what is listed
    [5, 199.96, 200, true], // at the next window's start (the current playlist has grown past it)
    [5, 150, 200, false],
  ])("%d s from the end, playing %d, next from %d: swap %s", (remaining, playing, nextStart, swap) => {
    expect(shouldSwap(remaining, playing, nextStart)).toBe(swap);
  });

  it("the next window is asked for from the end of the last listed segment", () => {
    expect(nextWindowFrom(segments, T0 + 3600)).toBeCloseTo(T0 + 15.6, 6);
    expect(nextWindowFrom([], T0 + 3600)).toBe(T0 + 3600);
  });
});
