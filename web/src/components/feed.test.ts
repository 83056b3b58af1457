import { describe, expect, it } from "vitest";
import type { Detection } from "../types";
import { cameraAt, withDetection } from "./feed";

const detection = (seq: number, time: number, camera = "porch"): Detection => ({
  camera, time, label: "person", class_id: 0, score: 0.8, box: [0, 0, 1, 1], model: "m", session: "s", seq, index: 0,
});

describe("the detections feed", () => {
  it("keeps the newest first, at most max, each once", () => {
    let list: Detection[] = [];
    for (const [seq, time] of [[1, 10], [2, 30], [3, 20], [2, 30], [4, 40]]) list = withDetection(list, detection(seq, time), 3);
    expect(list.map((d) => d.seq)).toEqual([4, 2, 3]);
  });

  it("links to the camera view at the detection's moment", () => {
    expect(cameraAt("porch", 1795788190.6)).toBe("/cameras/porch?t=2026-11-27T14:03:10Z");
    expect(cameraAt("a b", 0)).toBe("/cameras/a%20b?t=1970-01-01T00:00:00Z");
  });
});
