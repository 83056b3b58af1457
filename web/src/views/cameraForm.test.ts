import { describe, expect, it } from "vitest";
import type { Camera } from "../types";
import { fieldOfLoc, formOf, placeErrors, settingsOf } from "./cameraForm";

const porch: Camera = {
  name: "porch", url: "rtsp://admin:***@192.0.2.5/stream1", friendly_name: "Porch", detect: true, segment_seconds: 4,
  labels: ["person", "car"], min_score: 0.5, motion_gate: false, motion_threshold: null, keep_days: 7,
  keep_event_days: null, max_gb: 20, created_at: "", updated_at: "",
};

describe("the camera form", () => {
  it("sends back exactly the settings it was given (the *** URL keeps the stored password)", () => {
    const { created_at: _c, updated_at: _u, name: _n, ...settings } = porch;
    expect(settingsOf(formOf(porch))).toEqual({ settings, errors: {} });
  });

  it("starts a new camera with the API's defaults", () => {
    const parsed = settingsOf({ ...formOf(null), url: " rtsp://192.0.2.9/x " });
    expect(parsed.settings).toEqual({
      url: "rtsp://192.0.2.9/x", friendly_name: "", detect: true, segment_seconds: 10, labels: null, motion_gate: true,
      min_score: null, motion_threshold: null, keep_days: null, keep_event_days: null, max_gb: null,
    });
  });

  it.each([
    ["default", "person", null],
    ["every", "person", []],
    ["only", " person, traffic light ,, car", ["person", "traffic light", "car"]],
  ] as const)("labels %s (%j) are %j", (labelsMode, labels, expected) => {
    expect(settingsOf({ ...formOf(null), labelsMode, labels }).settings?.labels).toEqual(expected);
  });

  it.each([
    [{ segment_seconds: "" }, { segment_seconds: "required" }],
    [{ segment_seconds: "2.5" }, { segment_seconds: "must be a whole number of seconds" }],
    [{ max_gb: "lots" }, { max_gb: "must be a number" }],
    [{ labelsMode: "only" as const, labels: " , " }, { labels: "name at least one label" }],
  ])("refuses %j before asking the API", (change, errors) => {
    expect(settingsOf({ ...formOf(null), ...change })).toEqual({ settings: null, errors });
  });
});

describe("the API's errors beside their fields", () => {
  it.each([
    ["body.name", "name"],
    ["body.labels.0", "labels"],
    [["body", "max_gb"], "max_gb"],
    ["body", null],
    ["query.limit", null],
  ] as const)("%j is about %s", (loc, field) => {
    expect(fieldOfLoc(loc as string)).toBe(field);
  });

  it("places each entry and keeps the rest at the top", () => {
    const placed = placeErrors(422, "body.name: invalid name; body.bogus: unknown field", [
      { loc: "body.name" as unknown as string[], msg: "invalid name: use a-z" },
      { loc: "body.bogus" as unknown as string[], msg: "unknown field 'bogus'" },
      { loc: "body.labels.1" as unknown as string[], msg: "invalid label" },
      { loc: "body.labels.2" as unknown as string[], msg: "invalid label" },
    ]);
    expect(placed).toEqual({ fields: { name: "invalid name: use a-z", labels: "invalid label; invalid label" }, top: "unknown field 'bogus'" });
  });

  it("shows the detail at the top when no entry names a field, and a taken name beside the name", () => {
    expect(placeErrors(422, "URL must start with rtsp://", [])).toEqual({ fields: {}, top: "URL must start with rtsp://" });
    expect(placeErrors(409, "camera porch exists", [])).toEqual({ fields: { name: "camera porch exists" }, top: null });
  });
});
