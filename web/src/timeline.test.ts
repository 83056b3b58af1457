import { describe, expect, it } from "vitest";
import {
  MAX_SPAN_S, MIN_SPAN_S, clockLabel, fetchRange, gapLabel, instantOf, joinSeconds, labelColour, panBy, spanOf,
  tickStep, ticks, timeAt, xOf, zoneClock, zoomAround,
} from "./timeline";

const utc = (iso: string) => Date.parse(iso) / 1000;
const berlin = zoneClock("Europe/Berlin");
const newYork = zoneClock("America/New_York");
const kolkata = zoneClock("Asia/Kolkata");

describe("wall time and x", () => {
  const view = { start: 1000, end: 1600 };
  it.each([
    [1000, 0],
    [1300, 600],
    [1600, 1200],
    [900, -200],
  ])("t %d is at x %d on 1200 px", (t, x) => {
    expect(xOf(view, 1200, t)).toBe(x);
    expect(timeAt(view, 1200, x)).toBe(t);
  });

  it("a month on 390 px stays exact to the second", () => {
    const month = { start: utc("2026-10-01T00:00:00Z"), end: utc("2026-10-31T00:00:00Z") };
    const t = utc("2026-10-25T01:30:07Z");
    expect(timeAt(month, 390, xOf(month, 390, t))).toBeCloseTo(t, 3);
  });
});

describe("zoom around a point", () => {
  it("keeps the anchor where it is", () => {
    const view = { start: 0, end: 3600 };
    const zoomed = zoomAround(view, 900, 0.5);
    expect(spanOf(zoomed)).toBe(1800);
    expect(xOf(zoomed, 1000, 900)).toBeCloseTo(xOf(view, 1000, 900), 9);
  });

  it.each([
    [{ start: 0, end: 120 }, 0.1, MIN_SPAN_S],
    [{ start: 0, end: 20 * 86_400 }, 10, MAX_SPAN_S],
    [{ start: 0, end: 3600 }, 2, 7200],
  ])("%j by %d spans %d s (1 min .. 30 days)", (view, factor, span) => {
    expect(spanOf(zoomAround(view, 50, factor))).toBe(span);
  });

  it("pans, but never puts now left of the middle", () => {
    expect(panBy({ start: 0, end: 100 }, -30, 1000)).toEqual({ start: -30, end: 70 });
    expect(panBy({ start: 900, end: 1000 }, 500, 1000)).toEqual({ start: 950, end: 1050 });
  });

  it("asks for seconds per pixel and half a span either side", () => {
    expect(joinSeconds({ start: 0, end: 30 * 86_400 }, 1200)).toBe(2160);
    expect(joinSeconds({ start: 0, end: 60 }, 1200)).toBe(1);
    expect(fetchRange({ start: 1000, end: 2000 })).toEqual({ start: 500, end: 2500 });
    // a view following now asks for the same range until it has moved on by an eighth of its span
    expect(fetchRange({ start: 1010, end: 2010 })).toEqual({ start: 500, end: 2625 });
    expect(fetchRange({ start: 1130, end: 2130 })).toEqual({ start: 625, end: 2750 });
    expect(fetchRange({ start: 0, end: 20 })).toEqual({ start: -10, end: 30 });
  });
});

describe("ticks", () => {
  it.each([
    [60, 1200, 5],
    [3600, 1200, 300],
    [86_400, 1200, 7200],
    [30 * 86_400, 1920, 2 * 86_400],
    [30 * 86_400, 390, 7 * 86_400],
  ])("span %d s on %d px: a tick every %d s", (span, width, step) => {
    expect(tickStep(span, width)).toBe(step);
  });

  const labels = (start: string, end: string, width: number, clock = berlin) =>
    ticks({ start: utc(start), end: utc(end) }, width, clock).map((tick) => tick.label);

  it("labels every tick with the local time at its place, across midnight", () => {
    // 22:30 .. 01:30 in Berlin (UTC+1 in November); the day replaces "00:00"
    expect(labels("2026-11-26T21:30:00Z", "2026-11-27T00:30:00Z", 700)).toEqual(
      ["22:30", "23:00", "23:30", "Fri 27 Nov", "00:30", "01:00", "01:30"]);
  });

  it("spring forward: 02:00 does not exist, no tick is doubled", () => {
    const view = { start: utc("2026-03-28T23:00:00Z"), end: utc("2026-03-29T03:00:00Z") }; // 00:00 .. 05:00 local
    const out = ticks(view, 400, berlin);
    expect(out.map((t) => t.label)).toEqual(["Sun 29 Mar", "01:00", "03:00", "04:00", "05:00"]);
    for (const tick of out) expect(clockLabel(tick.t, berlin, false)).toBe(tick.major ? "00:00" : tick.label);
    expect(out[2].t - out[1].t).toBe(3600); // 01:00 CET to 03:00 CEST is one real hour
  });

  it("fall back: 02:00 happens twice, one of them gets the tick, all in order", () => {
    const view = { start: utc("2026-10-24T22:00:00Z"), end: utc("2026-10-25T03:00:00Z") }; // 00:00 .. 04:00 local
    const out = ticks(view, 500, berlin);
    expect(out.map((t) => t.label)).toEqual(["Sun 25 Oct", "01:00", "02:00", "03:00", "04:00"]);
    for (let n = 1; n < out.length; n += 1) expect(out[n].t).toBeGreaterThan(out[n - 1].t);
    expect(out[4].t - out[1].t).toBe(4 * 3600); // 01:00 to 04:00 local are 4 real hours
  });

  it("3-hour ticks stay on 00, 03, 06 local after a DST change", () => {
    const out = labels("2026-03-28T23:00:00Z", "2026-03-29T16:00:00Z", 600);
    expect(out).toEqual(["Sun 29 Mar", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00"]);
  });

  it("day ticks sit on local midnights across DST, in New York too", () => {
    const out = ticks({ start: utc("2026-11-01T00:00:00Z"), end: utc("2026-11-04T12:00:00Z") }, 600, newYork);
    expect(out.map((t) => t.label)).toEqual(["Sun 1 Nov", "Mon 2 Nov", "Tue 3 Nov", "Wed 4 Nov"]);
    expect(out[1].t - out[0].t).toBe(25 * 3600); // 1 Nov 2026 is 25 hours long there
  });

  it("half-hour zones get ticks on their own whole hours", () => {
    expect(labels("2026-11-27T08:20:00Z", "2026-11-27T11:40:00Z", 400, kolkata)).toEqual(["14:00", "15:00", "16:00", "17:00"]);
  });

  it("a month at 390 px: weekly ticks on Mondays", () => {
    const out = labels("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z", 390);
    expect(out).toEqual(["Mon 2 Nov", "Mon 9 Nov", "Mon 16 Nov", "Mon 23 Nov", "Mon 30 Nov"]);
  });

  it("seconds below a minute's step", () => {
    expect(labels("2026-11-27T13:03:00Z", "2026-11-27T13:03:20Z", 400)).toEqual(
      ["14:03:00", "14:03:05", "14:03:10", "14:03:15", "14:03:20"]);
  });

  it("a skipped local time maps past the skip", () => {
    const skipped = Date.UTC(2026, 2, 29, 2, 30) / 1000; // 02:30 local, as local seconds
    expect(clockLabel(instantOf(skipped, berlin), berlin)).toBe("03:30:00");
  });
});

describe("gap labels", () => {
  const now = utc("2026-11-27T15:00:00Z");
  it.each([
    [{ start: utc("2026-11-27T13:02:11Z"), end: utc("2026-11-27T13:05:40Z") }, "camera away 14:02:11 – 14:05:40"],
    [{ start: utc("2026-11-27T13:02:11Z"), end: null }, "camera away since 14:02:11"],
    [{ start: utc("2026-11-26T22:59:00Z"), end: utc("2026-11-26T23:03:10Z") },
      "camera away Thu 26 Nov 23:59:00 – Fri 27 Nov 00:03:10"],
    [{ start: utc("2026-11-20T10:00:00Z"), end: utc("2026-11-20T10:00:06Z") }, "camera away Fri 20 Nov 11:00:00 – 11:00:06"],
  ])("%j", (gap, label) => {
    expect(gapLabel({ ...gap, reason: "no packets for 5s" }, berlin, now)).toBe(label);
  });
});

it("marker colours are fixed per label", () => {
  expect(labelColour("person")).toBe(labelColour("person"));
  expect(labelColour("person")).not.toBe(labelColour("car"));
  expect(labelColour("forklift")).toMatch(/^hsl\(\d+ 70% 60%\)$/);
});
