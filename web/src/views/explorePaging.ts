// Explore's filters (kept in the URL) and its paging through /search, pure.
//
// /search answers the latest `limit` tracked objects (`events[]`) and incidents (merged detections, where the index
// has no events) of the range, in time order, and how many of each it found in all. Both are findings here. The
// next page asks again with `end` = the oldest shown finding's start. The range is inclusive, so that finding (and
// any other starting at the same instant) comes back again: they are dropped by their key.
import type { Query } from "../api";
import { isoUtc, parseIsoOrUnix } from "../time";
import type { Incident, SearchResponse, TrackedObject } from "../types";

/** A row of the result list: a tracked object, or an incident of detections. */
export type Finding = ({ kind: "object" } & TrackedObject) | ({ kind: "incident" } & Incident);

export const PAGE_SIZE = 50;

export interface SearchFilters {
  camera: string;
  label: string;
  start: number | null;
  end: number | null;
  /** 0..1; null: any score. */
  minScore: number | null;
  /** Only objects that entered this zone ("": any). */
  zone: string;
}

export const NO_FILTERS: SearchFilters = { camera: "", label: "", start: null, end: null, minScore: null, zone: "" };

function score(text: string | undefined): number | null {
  if (!text) return null;
  const value = Number(text);
  return Number.isFinite(value) && value >= 0 && value <= 1 ? value : null;
}

export function filtersFromQuery(query: Record<string, string | undefined>): SearchFilters {
  return {
    camera: query.camera ?? "",
    label: query.label ?? "",
    start: parseIsoOrUnix(query.start),
    end: parseIsoOrUnix(query.end),
    minScore: score(query.min_score),
    zone: query.zone ?? "",
  };
}

/** The page's own URL query for `filters` (times as ISO UTC, unset ones left out). */
export function queryOfFilters(f: SearchFilters): string {
  const params = new URLSearchParams();
  if (f.camera) params.set("camera", f.camera);
  if (f.label.trim()) params.set("label", f.label.trim());
  if (f.start !== null) params.set("start", isoUtc(f.start));
  if (f.end !== null) params.set("end", isoUtc(f.end));
  if (f.minScore !== null) params.set("min_score", String(f.minScore));
  if (f.zone.trim()) params.set("zone", f.zone.trim());
  return params.toString();
}

/** The /search query for one page: `before` (the paging cursor) replaces the filters' end. */
export function searchQuery(f: SearchFilters, before: number | null, limit = PAGE_SIZE, now = Date.now() / 1000): Query {
  const end = before ?? f.end;
  // Without a start /search takes the 24 h before `end`; with an end of its own the page keeps that default.
  const start = f.start ?? (end !== null ? end - 86_400 : now - 86_400);
  return {
    camera: f.camera || undefined,
    label: f.label.trim() || undefined,
    start,
    end: end ?? undefined,
    min_score: f.minScore ?? undefined,
    zone: f.zone.trim() || undefined,
    limit,
  };
}

export const findingKey = (f: Finding) =>
  f.kind === "object" ? `o\u0000${f.camera}\u0000${f.object_id}` : `i\u0000${f.camera}\u0000${f.label}\u0000${f.start}`;

/** The findings of one answer: its tracked objects and its incidents. */
export function findingsOf(answer: SearchResponse): Finding[] {
  return [
    ...(answer.events ?? []).map((e): Finding => ({ kind: "object", ...e })),
    ...answer.incidents.map((i): Finding => ({ kind: "incident", ...i })),
  ];
}

export interface Page {
  /** Newest first. */
  shown: Finding[];
  /** `end` of the next request; null: nothing older. */
  before: number | null;
  /** Findings older than the shown ones, as the last answer counted them. */
  older: number;
}

export function firstPage(answer: SearchResponse): Page {
  return addPage({ shown: [], before: null, older: 0 }, answer);
}

export function addPage(page: Page, answer: SearchResponse): Page {
  const seen = new Set(page.shown.map(findingKey));
  const fresh = findingsOf(answer).filter((f) => !seen.has(findingKey(f)));
  const shown = [...page.shown, ...fresh.sort((a, b) => b.start - a.start)];
  const older = Math.max(0, answer.total - answer.incidents.length)
    + Math.max(0, (answer.events_total ?? 0) - (answer.events ?? []).length);
  if (older === 0 || shown.length === 0) return { shown, before: null, older: 0 };
  const oldest = shown[shown.length - 1].start;
  // A whole page at one instant would ask for the same page forever: step just before it.
  const before = fresh.length === 0 ? oldest - 0.001 : oldest;
  return { shown, before, older };
}

/** The picture of a finding: through the API when it says where, else the presigned S3 URL. */
export const snapshotOf = (f: Incident | TrackedObject): string | null => f.snapshot || f.snapshot_url || null;
