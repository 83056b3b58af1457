import { useEffect, useRef, useState } from "preact/hooks";
import { api, cameraPath } from "../api";
import { rangeBetween } from "../playback";
import {
  fetchRange, gapLabel, joinSeconds, labelColour, momentLabel, panBy, spanOf, ticks, timeAt, xOf, zoomAround,
  type Clock, type Gap, type Interval, type TimelineAnswer, type View,
} from "../timeline";
import "./camera.css";
import { debugState } from "./debug";

/** An incident or a tracked object as the timeline marks it (GET /search). */
export interface IncidentMark {
  label: string;
  start: number;
  end: number;
  max_score: number;
}

/** What /search answers that the timeline marks: tracked objects (`events`) and incidents, in time order. */
export interface MarkAnswer {
  events?: IncidentMark[];
  incidents: IncidentMark[];
}

export const marksOf = (answer: MarkAnswer): IncidentMark[] =>
  [...(answer.events ?? []), ...answer.incidents].sort((a, b) => a.start - b.start);

export interface TimelineData {
  spans: Interval[];
  gaps: Gap[];
  incidents: IncidentMark[];
  error: string | null;
}

const POLL_NEAR_NOW_MS = 5000;
const DEBOUNCE_MS = 250;

/** Spans, gaps and incidents around a view, asked again when the view moves on (debounced) and every few seconds
 * while it shows now; the last answer stays drawn while the next is on its way. */
export function useTimelineData(camera: string, view: View, width: number, now: number): TimelineData {
  const [data, setData] = useState<TimelineData>({ spans: [], gaps: [], incidents: [], error: null });
  const range = fetchRange(view);
  const join = joinSeconds(view, width);
  const nearNow = view.end >= now - spanOf(view) / 2;

  useEffect(() => {
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout>;
    const load = async () => {
      try {
        const [timeline, search] = await Promise.all([
          api<TimelineAnswer>("GET", `${cameraPath(camera)}/timeline`,
            { query: { start: range.start, end: range.end, join_s: join }, signal: abort.signal }),
          api<MarkAnswer>("GET", "/search",
            { query: { camera, start: range.start, end: range.end, limit: 1000 }, signal: abort.signal }),
        ]);
        setData({ spans: timeline.spans, gaps: timeline.gaps, incidents: marksOf(search), error: null });
      } catch (exc) {
        if (abort.signal.aborted) return;
        setData((was) => ({ ...was, error: (exc as Error).message }));
      }
      if (nearNow && !abort.signal.aborted) timer = setTimeout(load, POLL_NEAR_NOW_MS);
    };
    timer = setTimeout(load, DEBOUNCE_MS);
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [camera, range.start, range.end, join, nearNow]);

  return data;
}

const HEIGHT = 76;
const TRACK = { y: 22, h: 26 };
const MARKS = { y: 52, h: 14 };
const ZOOM_STEP = 2;
const LABEL_CHAR_PX = 6.5; // the width of one character of an 11px label, about: labels that do not fit are left out

export const PRESETS: [string, number][] = [
  ["1 min", 60], ["10 min", 600], ["1 h", 3600], ["6 h", 21_600], ["1 day", 86_400], ["7 days", 604_800], ["30 days", 2_592_000],
];

interface Press {
  id: number;
  x: number;
}

interface Gesture {
  presses: Map<number, Press>;
  view: View;
  moved: boolean;
  selecting: boolean;
  startT: number;
  pinch: number | null; // the distance between two fingers when the pinch began
}

/** The timeline: recorded spans, gaps (labelled), incidents coloured by label, the playhead and now, on an SVG as
 * wide as its box. Wheel or pinch zooms around the pointer (1 min .. 30 days), drag pans, click or tap plays from
 * that moment, shift-drag selects a range for a clip. */
export function Timeline({ view, now, playhead, selection, data, clock, onView, onSeek, onSelect, onWidth }: {
  view: View; now: number; playhead: number | null; selection: Interval | null; data: TimelineData; clock: Clock;
  onView: (view: View) => void; onSeek: (t: number) => void; onSelect: (range: Interval) => void;
  onWidth: (width: number) => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(800);
  const [hover, setHover] = useState<{ x: number; text: string } | null>(null);
  const [dragSelection, setDragSelection] = useState<Interval | null>(null);
  const gesture = useRef<Gesture | null>(null);
  const latest = useRef({ view, now });
  latest.current = { view, now };
  const debug = useRef<Record<string, unknown> | null>(null);
  Object.assign((debug.current ??= debugState("timeline")), { start: view.start, end: view.end, width });

  useEffect(() => {
    const element = box.current!;
    const observer = new ResizeObserver(() => {
      const measured = Math.max(100, Math.round(element.clientWidth));
      setWidth(measured);
      onWidth(measured);
    });
    observer.observe(element);
    // wheel listeners must not be passive to keep the page from scrolling while the timeline zooms
    const wheel = (event: WheelEvent) => {
      event.preventDefault();
      const { view: v, now: n } = latest.current;
      const w = element.clientWidth;
      if (Math.abs(event.deltaX) > Math.abs(event.deltaY)) {
        onView(panBy(v, (event.deltaX / w) * spanOf(v), n));
      } else {
        const at = timeAt(v, w, event.clientX - element.getBoundingClientRect().left);
        onView(zoomAround(v, at, Math.exp(event.deltaY * 0.002)));
      }
    };
    element.addEventListener("wheel", wheel, { passive: false });
    return () => {
      observer.disconnect();
      element.removeEventListener("wheel", wheel);
    };
  }, []);

  const xAt = (event: PointerEvent) => event.clientX - box.current!.getBoundingClientRect().left;
  const x = (t: number) => xOf(view, width, t);

  const describe = (px: number, y: number): string => {
    const t = timeAt(view, width, px);
    const gap = data.gaps.find((g) => t >= g.start && t < (g.end ?? now));
    if (gap) return `${gapLabel(gap, clock, now)}${gap.reason ? ` (${gap.reason})` : ""}`;
    if (y >= MARKS.y - 4) {
      const slack = (6 / width) * spanOf(view);
      const incident = data.incidents.find((i) => t >= i.start - slack && t <= i.end + slack);
      if (incident) return `${incident.label} ${Math.round(incident.max_score * 100)} % · ${momentLabel(incident.start, clock)}`;
    }
    return momentLabel(t, clock);
  };

  const down = (event: PointerEvent) => {
    if (event.button !== 0) return;
    (event.currentTarget as Element).setPointerCapture(event.pointerId);
    const g = (gesture.current ??= {
      presses: new Map(), view, moved: false, selecting: event.shiftKey, startT: timeAt(view, width, xAt(event)), pinch: null,
    });
    g.presses.set(event.pointerId, { id: event.pointerId, x: xAt(event) });
    if (g.presses.size === 2) {
      const [a, b] = [...g.presses.values()];
      Object.assign(g, { pinch: Math.max(10, Math.abs(a.x - b.x)), view, moved: true });
    }
  };

  const move = (event: PointerEvent) => {
    const px = xAt(event);
    const rect = box.current!.getBoundingClientRect();
    setHover({ x: px, text: describe(px, event.clientY - rect.top) });
    const g = gesture.current;
    const press = g?.presses.get(event.pointerId);
    if (!g || !press) return;
    if (g.pinch !== null && g.presses.size === 2) {
      g.presses.set(event.pointerId, { ...press, x: px });
      const [a, b] = [...g.presses.values()];
      const anchor = timeAt(g.view, width, (a.x + b.x) / 2);
      onView(zoomAround(g.view, anchor, g.pinch / Math.max(10, Math.abs(a.x - b.x))));
      return;
    }
    const dx = px - press.x;
    if (!g.moved && Math.abs(dx) < 5) return;
    g.moved = true;
    if (g.selecting) setDragSelection(rangeBetween(g.startT, timeAt(view, width, px)));
    else onView(panBy(g.view, (-dx / width) * spanOf(g.view), now));
  };

  const up = (event: PointerEvent) => {
    const g = gesture.current;
    if (!g) return;
    g.presses.delete(event.pointerId);
    if (g.presses.size) return;
    gesture.current = null;
    if (g.selecting && g.moved && dragSelection) onSelect(dragSelection);
    else if (!g.moved && event.type === "pointerup") onSeek(Math.min(now, timeAt(view, width, xAt(event))));
    setDragSelection(null);
  };

  const zoomBy = (factor: number) => {
    const anchor = playhead !== null && playhead >= view.start && playhead <= view.end ? playhead
      : now >= view.start && now <= view.end ? now : (view.start + view.end) / 2;
    onView(zoomAround(view, anchor, factor));
  };

  const visible = (i: Interval) => i.end >= view.start && i.start <= view.end;
  const clampX = (t: number) => Math.max(-2, Math.min(width + 2, x(t)));
  const shownSelection = dragSelection ?? selection;
  const tickList = ticks(view, width, clock);

  return (
    <div class="tl">
      <div
        ref={box}
        class="tl-box"
        onPointerDown={down}
        onPointerMove={move}
        onPointerUp={up}
        onPointerCancel={up}
        onPointerLeave={() => setHover(null)}
        // a tap has been handled as a pointer: no click after it, which would land on whatever the seek moved here
        onTouchEnd={(event) => event.preventDefault()}
      >
        <svg class="tl-svg" width={width} height={HEIGHT} viewBox={`0 0 ${width} ${HEIGHT}`} role="img"
          aria-label={`timeline ${momentLabel(view.start, clock)} to ${momentLabel(view.end, clock)}`}>
          <rect class="tl-track" x={0} y={TRACK.y} width={width} height={TRACK.h} />
          {data.spans.filter(visible).map((s) => (
            <rect class="tl-span" x={clampX(s.start)} y={TRACK.y} width={Math.max(1, clampX(s.end) - clampX(s.start))} height={TRACK.h} />
          ))}
          {data.gaps.filter((g) => visible({ start: g.start, end: g.end ?? now })).map((g) => {
            const x0 = clampX(g.start);
            const w = Math.max(3, clampX(g.end ?? now) - x0);
            const label = gapLabel(g, clock, now);
            return (
              <g class="tl-gap" data-gap={label}>
                <title>{label}</title>
                <rect x={x0} y={TRACK.y} width={w} height={TRACK.h} />
                {w > label.length * LABEL_CHAR_PX + 8 && <text x={x0 + 4} y={TRACK.y + 17}>{label}</text>}
              </g>
            );
          })}
          {tickList.map((tick) => (
            <g class={`tl-tick${tick.major ? " major" : ""}`}>
              <line x1={x(tick.t)} x2={x(tick.t)} y1={14} y2={TRACK.y + TRACK.h} />
              {x(tick.t) + 3 + tick.label.length * LABEL_CHAR_PX < width && <text x={x(tick.t) + 3} y={11}>{tick.label}</text>}
            </g>
          ))}
          {data.incidents.filter(visible).map((i) => (
            <rect class="tl-mark" data-label={i.label} x={clampX(i.start)} y={MARKS.y}
              width={Math.max(3, clampX(i.end) - clampX(i.start))} height={MARKS.h} fill={labelColour(i.label)}>
              <title>{`${i.label} ${Math.round(i.max_score * 100)} %`}</title>
            </rect>
          ))}
          {shownSelection && visible(shownSelection) && (
            <rect class="tl-selection" x={clampX(shownSelection.start)} y={TRACK.y - 4}
              width={Math.max(2, clampX(shownSelection.end) - clampX(shownSelection.start))} height={MARKS.y + MARKS.h - TRACK.y + 8} />
          )}
          {now >= view.start && now <= view.end && <line class="tl-now" x1={x(now)} x2={x(now)} y1={14} y2={HEIGHT} />}
          {playhead !== null && playhead >= view.start && playhead <= view.end && (
            <g class="tl-playhead">
              <line x1={x(playhead)} x2={x(playhead)} y1={TRACK.y - 6} y2={HEIGHT} />
              <path d={`M ${x(playhead) - 5} ${TRACK.y - 8} h 10 l -5 6 z`} />
            </g>
          )}
        </svg>
        {hover && (
          <div class="tl-tip" style={hover.x < width * 0.25 ? { left: "2px" } : hover.x > width * 0.75 ? { right: "2px" }
            : { left: `${hover.x}px`, transform: "translateX(-50%)" }}>{hover.text}</div>
        )}
      </div>
      <div class="tl-tools">
        <button type="button" onClick={() => zoomBy(1 / ZOOM_STEP)} aria-label="zoom in" title="zoom in">+</button>
        <button type="button" onClick={() => zoomBy(ZOOM_STEP)} aria-label="zoom out" title="zoom out">−</button>
        <select aria-label="time shown" value="" onChange={(event) => {
          const span = Number((event.currentTarget as HTMLSelectElement).value);
          if (span) onView(zoomAround(view, playhead ?? now, span / spanOf(view)));
        }}>
          <option value="">{spanText(spanOf(view))}</option>
          {PRESETS.map(([text, span]) => <option value={span}>{text}</option>)}
        </select>
        {data.error && <span class="tl-error" role="status">timeline: {data.error}</span>}
      </div>
    </div>
  );
}

function spanText(span: number): string {
  if (span < 3600) return `${Math.round(span / 60)} min`;
  if (span < 2 * 86_400) return `${Math.round(span / 360) / 10} h`;
  return `${Math.round(span / 8640) / 10} days`;
}
