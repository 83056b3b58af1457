import { useEffect, useState } from "preact/hooks";
import { api, cameraPath } from "../api";
import { clockLabel, momentLabel, type Clock, type Interval } from "../timeline";

/** POST /cameras/byname/<name>/clip (services/api/models.py ClipMade, plus `download` where the API has it). */
interface ClipMade {
  url: string;
  download?: string;
  start: number;
  end: number;
  frames: number;
  bytes: number;
}

type Export =
  | { kind: "idle" }
  | { kind: "running"; since: number }
  | { kind: "done"; clip: ClipMade }
  | { kind: "failed"; message: string };

/** A clip of the selected range: mark in and out at the playhead (or select on the timeline with shift-drag),
 * export it (the POST answers when the MP4 is made), then download it. */
export function ClipExport({ camera, selection, here, clock, onSelection }: {
  camera: string; selection: Interval | null; here: number; clock: Clock; onSelection: (range: Interval | null) => void;
}) {
  const [state, setState] = useState<Export>({ kind: "idle" });
  const [, setTick] = useState(0);

  useEffect(() => setState({ kind: "idle" }), [selection?.start, selection?.end]);
  useEffect(() => {
    if (state.kind !== "running") return;
    const timer = setInterval(() => setTick((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, [state.kind]);

  const mark = (which: "in" | "out") => {
    const at = Math.floor(here);
    const start = which === "in" ? at : Math.min(selection?.start ?? at - 30, at - 1);
    const end = which === "out" ? at : Math.max(selection?.end ?? at + 30, at + 1);
    onSelection({ start, end });
  };

  const exportClip = async () => {
    if (!selection) return;
    setState({ kind: "running", since: Date.now() });
    try {
      const clip = await api<ClipMade>("POST", `${cameraPath(camera)}/clip`,
        { query: { start: selection.start.toFixed(3), end: selection.end.toFixed(3) } });
      setState({ kind: "done", clip });
    } catch (exc) {
      setState({ kind: "failed", message: (exc as Error).message });
    }
  };

  const seconds = selection ? Math.round(selection.end - selection.start) : 0;
  return (
    <div class="clip" aria-label="clip export">
      <div class="clip-row">
        <button type="button" onClick={() => mark("in")}>Mark in</button>
        <button type="button" onClick={() => mark("out")}>Mark out</button>
        {selection ? (
          <span class="clip-range">
            {momentLabel(selection.start, clock)} – {clockLabel(selection.end, clock)} ({seconds} s)
          </span>
        ) : (
          <span class="clip-hint">Pick a clip: mark in and out at the playhead, or shift-drag on the timeline.</span>
        )}
        {selection && (
          <>
            <button type="button" class="primary" onClick={exportClip} disabled={state.kind === "running"}>Export clip</button>
            <button type="button" class="link" onClick={() => onSelection(null)}>Clear</button>
          </>
        )}
      </div>
      {state.kind === "running" && (
        <div class="clip-row" role="status">
          <progress aria-label="exporting" /> exporting… {Math.floor((Date.now() - state.since) / 1000)} s
        </div>
      )}
      {state.kind === "done" && (
        <div class="clip-row" role="status">
          <a class="clip-download" href={state.clip.download ?? state.clip.url}
            download={`${camera}-${clockLabel(state.clip.start, clock).replaceAll(":", "")}.mp4`}>
            Download clip
          </a>
          <span class="clip-hint">{state.clip.frames} frames, {(state.clip.bytes / 1e6).toFixed(1)} MB</span>
        </div>
      )}
      {state.kind === "failed" && <div class="clip-row clip-error" role="alert">Export failed: {state.message}</div>}
    </div>
  );
}
