// The timeline's maths, pure: a view (a stretch of wall time in Unix seconds) drawn across a width in pixels,
// zoomed and panned within bounds, its ticks and labels in local time (right across hour, day and DST changes:
// ticks are laid on the local clock, then placed at the instant that local time happens), and gap labels.

export const MIN_SPAN_S = 60;
export const MAX_SPAN_S = 30 * 86_400;

/** The stretch of wall time the timeline shows, Unix seconds. */
export interface View {
  start: number;
  end: number;
}

export interface Interval {
  start: number;
  end: number;
}

/** A stretch without footage (`end` null while the camera is still away). */
export interface Gap {
  start: number;
  end: number | null;
  reason: string;
}

/** GET /cameras/byname/<name>/timeline. */
export interface TimelineAnswer {
  camera: string;
  start: number;
  end: number;
  spans: Interval[];
  gaps: Gap[];
  truncated: boolean;
}

export const spanOf = (view: View) => view.end - view.start;

export const xOf = (view: View, width: number, t: number) => ((t - view.start) / spanOf(view)) * width;

export const timeAt = (view: View, width: number, x: number) => view.start + (x / width) * spanOf(view);

/** The view scaled by `factor` (> 1 shows more time) keeping `anchor` where it is; the span stays in 1 min .. 30 d. */
export function zoomAround(view: View, anchor: number, factor: number): View {
  const span = spanOf(view);
  const next = Math.min(MAX_SPAN_S, Math.max(MIN_SPAN_S, span * factor));
  const fraction = (anchor - view.start) / span;
  const start = anchor - fraction * next;
  return { start, end: start + next };
}

/** The view moved by `seconds`, never so far that "now" leaves its left half (there is nothing after now). */
export function panBy(view: View, seconds: number, now: number): View {
  const span = spanOf(view);
  const end = Math.min(view.end + seconds, now + span / 2);
  return { start: end - span, end };
}

/** A view of `span` seconds that follows now: now at 90 % of the width. */
export const followingNow = (now: number, span: number): View => ({ start: now - span * 0.9, end: now + span * 0.1 });

/** A view of `span` seconds centred on `t`. */
export const centredOn = (t: number, span: number): View => ({ start: t - span / 2, end: t + span / 2 });

/** Seconds per pixel, the `join_s` the timeline endpoint merges spans with (whole seconds, at least 1). */
export const joinSeconds = (view: View, width: number) => Math.max(1, Math.floor(spanOf(view) / Math.max(1, width)));

/** What to ask the API for a view: the view and half a span either side (a pan needs no wait), its bounds on
 * multiples of an eighth of the span (at least 5 s), so a view that follows now asks again only every so often. */
export function fetchRange(view: View): Interval {
  const span = spanOf(view);
  const quantum = Math.max(5, Math.round(span / 8));
  return {
    start: Math.floor((view.start - span / 2) / quantum) * quantum,
    end: Math.ceil((view.end + span / 2) / quantum) * quantum,
  };
}

// -- local time --------------------------------------------------------------------------------------------------

/** A time zone: seconds east of UTC at an instant. */
export interface Clock {
  offset(t: number): number;
}

/** The browser's own time zone, or a named IANA zone (tests use Europe/Berlin and friends). */
export function zoneClock(timeZone?: string): Clock {
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
    hour: "numeric", minute: "numeric", second: "numeric",
  });
  const cache = new Map<number, number>();
  return {
    offset(t: number): number {
      const minute = Math.floor(t / 60); // zones change on whole minutes
      const known = cache.get(minute);
      if (known !== undefined) return known;
      const parts: Record<string, number> = {};
      for (const part of format.formatToParts(new Date(minute * 60_000))) parts[part.type] = Number(part.value);
      const local = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute, parts.second) / 1000;
      const offset = local - minute * 60;
      if (cache.size > 4096) cache.clear();
      cache.set(minute, offset);
      return offset;
    },
  };
}

/** The local wall clock at `t` as a Date to be read with getUTC* (so no other zone gets involved). */
const localDate = (t: number, clock: Clock) => new Date((t + clock.offset(t)) * 1000);

/** The instant a local wall-clock time (seconds since the local epoch) happens; a time skipped by a DST change
 * maps to the instant just after the skip, a repeated one to one of its two occurrences. */
export function instantOf(local: number, clock: Clock): number {
  const guess = local - clock.offset(local);
  return local - clock.offset(guess);
}

const pad2 = (n: number) => String(n).padStart(2, "0");
const WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** "14:03:10" (or "14:03" with `seconds` false), local. */
export function clockLabel(t: number, clock: Clock, seconds = true): string {
  const d = localDate(t, clock);
  const hm = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
  return seconds ? `${hm}:${pad2(d.getUTCSeconds())}` : hm;
}

/** "Fri 27 Nov", local. */
export function dayLabel(t: number, clock: Clock): string {
  const d = localDate(t, clock);
  return `${WEEKDAYS[d.getUTCDay()]} ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}`;
}

const sameLocalDay = (a: number, b: number, clock: Clock) =>
  Math.floor((a + clock.offset(a)) / 86_400) === Math.floor((b + clock.offset(b)) / 86_400);

/** "Fri 27 Nov 14:03:10", local: a moment for a person. */
export const momentLabel = (t: number, clock: Clock) => `${dayLabel(t, clock)} ${clockLabel(t, clock)}`;

/** "camera away 14:02:11 – 14:05:40"; with days when it is not within one day, or not today; "since" while open. */
export function gapLabel(gap: Gap, clock: Clock, now: number): string {
  const withDay = (t: number) => (sameLocalDay(t, now, clock) ? clockLabel(t, clock) : momentLabel(t, clock));
  if (gap.end === null) return `camera away since ${withDay(gap.start)}`;
  const end = sameLocalDay(gap.start, gap.end, clock) ? clockLabel(gap.end, clock) : momentLabel(gap.end, clock);
  return `camera away ${withDay(gap.start)} – ${end}`;
}

// -- ticks -------------------------------------------------------------------------------------------------------

const DAY = 86_400;
/** Tick steps in local-clock seconds; days and weeks are counted on the local calendar. */
export const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200,
  DAY, 2 * DAY, 7 * DAY];

export interface Tick {
  t: number;
  label: string;
  /** A local midnight: labelled with its day. */
  major: boolean;
}

/** The smallest step that leaves at least `minPx` between ticks. */
export function tickStep(span: number, width: number, minPx = 90): number {
  const wanted = (span / Math.max(1, width)) * minPx;
  return TICK_STEPS.find((step) => step >= wanted) ?? TICK_STEPS[TICK_STEPS.length - 1];
}

/** The ticks of a view: every `tickStep` on the local clock (weeks from Monday), each placed at the instant that
 * local time happens and labelled with the local time at that instant ("HH:MM", "HH:MM:SS" under a minute), a
 * local midnight with its day. Where DST skips an hour its ticks fall away; where it repeats one, one of the
 * two occurrences has the tick. */
export function ticks(view: View, width: number, clock: Clock, minPx = 90): Tick[] {
  const step = tickStep(spanOf(view), width, minPx);
  const shift = step === 7 * DAY ? 4 * DAY : 0; // 1970-01-01 was a Thursday: 5 Jan, 4 days on, a Monday
  const localStart = view.start + clock.offset(view.start);
  let local = Math.ceil((localStart - shift) / step) * step + shift;
  const out: Tick[] = [];
  for (let guard = 0; guard < 1000; guard += 1, local += step) {
    const t = instantOf(local, clock);
    if (t > view.end) break;
    if (t < view.start || (out.length && t <= out[out.length - 1].t)) continue;
    const d = localDate(t, clock);
    const midnight = d.getUTCHours() === 0 && d.getUTCMinutes() === 0 && d.getUTCSeconds() === 0;
    const label = midnight || step >= DAY ? dayLabel(t, clock) : clockLabel(t, clock, step < 60);
    out.push({ t, label, major: midnight });
  }
  return out;
}

// -- markers -----------------------------------------------------------------------------------------------------

const LABEL_COLOURS: Record<string, string> = {
  person: "#f5a524", car: "#4c8dff", truck: "#6e9fff", bus: "#7aa7ff", bicycle: "#2ec4b6", motorcycle: "#2ec4b6",
  dog: "#c77dff", cat: "#e07be0", bird: "#9bd770",
};

/** A label's marker colour: fixed for the common ones, from the label's hash for others (stable across loads). */
export function labelColour(label: string): string {
  const known = LABEL_COLOURS[label];
  if (known) return known;
  let hash = 0;
  for (const char of label) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360} 70% 60%)`;
}
