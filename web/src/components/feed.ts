// The live detections feed's list, pure: newest first, at most `max`, each detection once (an EventSource that
// reconnects may see one again).
import { isoUtc } from "../time";
import type { Detection } from "../types";

export const detectionId = (d: Detection) => `${d.camera}:${d.session}:${d.seq}:${d.index ?? d.label}`;

export function withDetection(list: Detection[], detection: Detection, max = 20): Detection[] {
  const id = detectionId(detection);
  if (list.some((d) => detectionId(d) === id)) return list;
  return [detection, ...list].sort((a, b) => b.time - a.time).slice(0, max);
}

/** The camera view at a moment: `/cameras/<cam>?t=<ISO UTC>`. */
export const cameraAt = (camera: string, unix: number) => `/cameras/${encodeURIComponent(camera)}?t=${isoUtc(unix)}`;
