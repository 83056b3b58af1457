import { describe, expect, it } from "vitest";
import type { Camera, CameraStats, Stats } from "../types";
import { filterTiles, isStateFilter, tilesOf } from "./gridTiles";

const camera = (name: string, friendly = "", detect = true): Camera => ({
  name, url: `rtsp://h/${name}`, friendly_name: friendly, detect, segment_seconds: 10, labels: null, min_score: null,
  motion_gate: true, motion_threshold: null, keep_days: null, keep_event_days: null, max_gb: null,
  created_at: "", updated_at: "",
});
const measured = (name: string, state: CameraStats["state"], error?: string): CameraStats => ({
  name, state, ingest_worker: null, segmenter_worker: null, last_packet_age_s: null, fps: null, bitrate_bps: null,
  chunks_last_hour: null,
  ...(error === undefined ? {} : { ingest: { worker: "w", state: "retrying", error_kind: "refused", error, since: 0, attempts: 1, updated_at: 0 } }),
});
const stats = (per: CameraStats[]) => ({ per_camera: per } as unknown as Stats);

describe("tiles", () => {
  const cameras = [camera("porch", "Front porch"), camera("garage", "", false), camera("yard", "Back yard"), camera("new")];
  const tiles = tilesOf(cameras, stats([
    measured("porch", "recording"),
    measured("garage", "orphaned", "connection refused (192.0.2.1:554)"),
    measured("yard", "camera_away", ""),
  ]));

  it("joins each camera with its state, error and friendly name", () => {
    expect(tiles).toEqual([
      { name: "porch", title: "Front porch", state: "recording", detect: true, error: null },
      { name: "garage", title: "garage", state: "orphaned", detect: false, error: "connection refused (192.0.2.1:554)" },
      { name: "yard", title: "Back yard", state: "camera_away", detect: true, error: null },
      { name: "new", title: "new", state: "unknown", detect: true, error: null },
    ]);
  });

  it("is unknown for every camera before /stats answers", () => {
    expect(tilesOf(cameras, null).map((t) => t.state)).toEqual(["unknown", "unknown", "unknown", "unknown"]);
  });

  it.each([
    ["", "all", ["porch", "garage", "yard", "new"]],
    ["POR", "all", ["porch"]],
    ["front", "all", ["porch"]],
    ["  yard ", "all", ["yard"]],
    ["o", "recording", ["porch"]],
    ["", "orphaned", ["garage"]],
    ["", "camera_away", ["yard"]],
    ["", "detection_off", ["garage"]],
    ["zzz", "all", []],
  ] as const)("filter %j, state %s shows %j", (text, state, names) => {
    expect(filterTiles(tiles, text, state).map((t) => t.name)).toEqual(names);
  });

  it("knows its state filters", () => {
    expect(isStateFilter("camera_away")).toBe(true);
    expect(isStateFilter("bogus")).toBe(false);
    expect(isStateFilter(undefined)).toBe(false);
  });
});
