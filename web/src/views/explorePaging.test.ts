import { describe, expect, it } from "vitest";
import type { Incident, SearchResponse, TrackedObject } from "../types";
import { NO_FILTERS, addPage, filtersFromQuery, firstPage, queryOfFilters, searchQuery, snapshotOf } from "./explorePaging";

const incident = (camera: string, start: number, label = "person"): Incident => ({
  camera, label, start, end: start + 2, detections: 1, max_score: 0.9, snapshot_key: null, snapshot_url: null, chunks: [],
});
const answer = (incidents: Incident[], total: number): SearchResponse => ({ incidents, total, merge_gap_s: 10 });

describe("filters in the URL", () => {
  it("round-trip through the query", () => {
    const f = { camera: "porch", label: "person", start: 1795788190, end: 1795791790, minScore: 0.5, zone: "drive" };
    const text = queryOfFilters(f);
    expect(text).toBe("camera=porch&label=person&start=2026-11-27T14%3A03%3A10Z&end=2026-11-27T15%3A03%3A10Z&min_score=0.5&zone=drive");
    expect(filtersFromQuery(Object.fromEntries(new URLSearchParams(text)))).toEqual(f);
  });

  it("drop what cannot be read", () => {
    expect(filtersFromQuery({ start: "soon", min_score: "2" })).toEqual(NO_FILTERS);
    expect(queryOfFilters(NO_FILTERS)).toBe("");
  });

  it("ask /search for the 24 h before the end without a start, the cursor replacing the end", () => {
    expect(searchQuery(NO_FILTERS, null, 50, 1_000_000)).toEqual(
      { camera: undefined, label: undefined, start: 913_600, end: undefined, min_score: undefined, zone: undefined, limit: 50 });
    const f = { ...NO_FILTERS, camera: "porch", start: 100, end: 900, minScore: 0.3 };
    expect(searchQuery(f, 500, 20)).toEqual({ camera: "porch", label: undefined, start: 100, end: 500, min_score: 0.3, zone: undefined, limit: 20 });
    expect(searchQuery({ ...NO_FILTERS, end: 90_000 }, null, 10).start).toBe(3600);
  });
});

const tracked = (camera: string, objectId: string, start: number): TrackedObject => ({
  camera, object_id: objectId, label: "car", start, end: start + 60, max_score: 0.8, snapshot_key: null, snapshot_url: null,
  chunks: [], zones: [], entered_zones: ["drive"], stationary: true, ended: false,
});

describe("tracked objects beside incidents", () => {
  it("are findings of their own, newest first, counted in what is older", () => {
    const page = firstPage({ ...answer([incident("a", 150)], 1), events: [tracked("a", "7", 100), tracked("a", "8", 200)],
                             events_total: 5 });
    expect(page.shown.map((f) => `${f.kind}${f.start}`)).toEqual(["object200", "incident150", "object100"]);
    expect(page.older).toBe(3);
  });

  it("are one row per object however often the inclusive end returns it", () => {
    const one = firstPage({ ...answer([], 0), events: [tracked("a", "7", 100)], events_total: 2 });
    const two = addPage(one, { ...answer([], 0), events: [tracked("a", "6", 100), tracked("a", "7", 100)], events_total: 2 });
    expect(two.shown.map((f) => (f.kind === "object" ? f.object_id : ""))).toEqual(["7", "6"]);
  });
});

describe("paging", () => {
  it("shows the newest first and asks next for what is older than the oldest shown", () => {
    const page = firstPage(answer([incident("a", 100), incident("b", 300), incident("a", 200)], 7));
    expect(page.shown.map((i) => i.start)).toEqual([300, 200, 100]);
    expect(page.before).toBe(100);
    expect(page.older).toBe(4);
  });

  it("drops the incidents the inclusive end returns again, and stops when nothing is older", () => {
    const one = firstPage(answer([incident("a", 100), incident("b", 100), incident("a", 200)], 5));
    // Asked again with end = 100: the two starting at 100 come back, with the two older ones.
    const two = addPage(one, answer([incident("c", 50), incident("d", 80), incident("a", 100), incident("b", 100)], 4));
    expect(two.shown.map((i) => `${i.camera}${i.start}`)).toEqual(["a200", "a100", "b100", "d80", "c50"]);
    expect(two).toMatchObject({ before: null, older: 0 });
  });

  it("keeps incidents of another label starting at the same instant", () => {
    const one = firstPage(answer([incident("a", 100, "car")], 2));
    const two = addPage(one, answer([incident("a", 100, "car"), incident("a", 100, "person")], 2));
    expect(two.shown.map((i) => i.label)).toEqual(["car", "person"]);
  });

  it("steps past a page that brought nothing new (a whole page at one instant)", () => {
    const one = firstPage(answer([incident("a", 100), incident("b", 100)], 9));
    const two = addPage(one, answer([incident("a", 100), incident("b", 100)], 9));
    expect(two.shown).toHaveLength(2);
    expect(two.before).toBeCloseTo(99.999, 6);
  });

  it("is empty without incidents", () => {
    expect(firstPage(answer([], 0))).toEqual({ shown: [], before: null, older: 0 });
  });

  it("prefers the API's snapshot path to the presigned URL", () => {
    const i = incident("a", 1);
    expect(snapshotOf(i)).toBeNull();
    expect(snapshotOf({ ...i, snapshot_url: "http://s3/x.jpg" })).toBe("http://s3/x.jpg");
    expect(snapshotOf({ ...i, snapshot_url: "http://s3/x.jpg", snapshot: "/snapshots/x.jpg" })).toBe("/snapshots/x.jpg");
  });
});
