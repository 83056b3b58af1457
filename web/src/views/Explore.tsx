import { useLocation } from "preact-iso";
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, api } from "../api";
import { cameraAt } from "../components/feed";
import { formatScore, formatWhen, fromLocalInput, toLocalInput } from "../format";
import type { Camera, SearchResponse } from "../types";
import { type Finding, type Page, type SearchFilters, addPage, filtersFromQuery, findingKey, firstPage, queryOfFilters, searchQuery, snapshotOf } from "./explorePaging";
import "./explore.css";
import "./forms.css";

const COMMON_LABELS = ["person", "car", "truck", "bicycle", "motorcycle", "bus", "dog", "cat", "bird"];

/** Tracked objects and incidents from /search, newest first, filtered by camera, label, time range, score and zone;
 * pages with "Load more". */
export function Explore() {
  const location = useLocation();
  const filters = useMemo(() => filtersFromQuery(location.query), [location.url]);
  const key = queryOfFilters(filters);
  const [cameras, setCameras] = useState<Camera[]>([]);
  const [page, setPage] = useState<Page | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api<Camera[]>("GET", "/cameras").then(setCameras, () => setCameras([]));
  }, []);

  const load = async (before: number | null, current: Page | null, signal?: AbortSignal) => {
    setBusy(true);
    setError(null);
    try {
      const answer = await api<SearchResponse>("GET", "/search", { query: searchQuery(filters, before), signal });
      setPage(current ? addPage(current, answer) : firstPage(answer));
    } catch (exc) {
      if (signal?.aborted) return;
      setError(exc instanceof ApiError ? exc.detail : String(exc));
    }
    if (!signal?.aborted) setBusy(false);
  };

  useEffect(() => {
    const abort = new AbortController();
    setPage(null);
    void load(null, null, abort.signal);
    return () => abort.abort();
  }, [key]);

  const names = new Map(cameras.map((c) => [c.name, c.friendly_name || c.name]));
  return (
    <div class="explore-page">
      <h1>Explore</h1>
      <SearchForm filters={filters} cameras={cameras} onSearch={(f) => {
        const query = queryOfFilters(f);
        location.route(query ? `/explore?${query}` : "/explore");
      }} />
      {error && <p class="error-box" role="alert">{error}</p>}
      {page && (
        <p class="muted result-count" role="status">
          {page.shown.length === 0 ? "Nothing found in this range." : `${page.shown.length} shown${page.older ? `, ${page.older} older` : ""}`}
          {filters.start === null && " (the last 24 hours unless a start is set)"}
        </p>
      )}
      {page && page.shown.length > 0 && (
        <ul class="incidents">
          {page.shown.map((found) => <FindingRow key={findingKey(found)} found={found} title={names.get(found.camera) ?? found.camera} />)}
        </ul>
      )}
      {busy && <p class="muted">Searching…</p>}
      {page && page.before !== null && !busy && (
        <button type="button" class="button load-more" onClick={() => void load(page.before, page)}>Load more</button>
      )}
    </div>
  );
}

function FindingRow({ found, title }: { found: Finding; title: string }) {
  const picture = snapshotOf(found);
  const seconds = Math.round(found.end - found.start);
  return (
    <li>
      <a class="incident" href={cameraAt(found.camera, found.start)}>
        <span class="thumb">
          {picture ? <img src={picture} alt={`${found.label} on ${title}`} loading="lazy" width={160} height={90} />
                   : <span class="thumb-none">no snapshot</span>}
        </span>
        <span class="incident-text">
          <span class="incident-label">{found.label}</span>
          <span class="incident-camera">{title}</span>
          <span class="incident-meta">
            <time dateTime={new Date(found.start * 1000).toISOString()}>{formatWhen(found.start)}</time>
            {seconds > 0 && <span> · {seconds} s</span>}
            {found.kind === "incident"
              ? <span> · {found.detections} detection{found.detections === 1 ? "" : "s"}</span>
              : <span class="tracked"> · tracked{found.stationary ? ", stationary" : ""}{found.ended ? "" : ", in view"}
                  {found.entered_zones.length > 0 && ` · zones ${found.entered_zones.join(", ")}`}</span>}
          </span>
        </span>
        <span class="incident-score" title="best score">{formatScore(found.max_score)}</span>
      </a>
    </li>
  );
}

function SearchForm({ filters, cameras, onSearch }: { filters: SearchFilters; cameras: Camera[]; onSearch: (f: SearchFilters) => void }) {
  const [camera, setCamera] = useState(filters.camera);
  const [label, setLabel] = useState(filters.label);
  const [start, setStart] = useState(filters.start === null ? "" : toLocalInput(filters.start));
  const [end, setEnd] = useState(filters.end === null ? "" : toLocalInput(filters.end));
  const [score, setScore] = useState(filters.minScore === null ? "" : String(Math.round(filters.minScore * 100)));
  const [zone, setZone] = useState(filters.zone);

  useEffect(() => {  // back/forward or a link changed the URL: show its filters
    setCamera(filters.camera);
    setLabel(filters.label);
    setStart(filters.start === null ? "" : toLocalInput(filters.start));
    setEnd(filters.end === null ? "" : toLocalInput(filters.end));
    setScore(filters.minScore === null ? "" : String(Math.round(filters.minScore * 100)));
    setZone(filters.zone);
  }, [queryOfFilters(filters)]);

  const submit = (e: Event) => {
    e.preventDefault();
    const percent = score.trim() === "" ? null : Number(score);
    onSearch({
      camera,
      label: label.trim(),
      start: fromLocalInput(start),
      end: fromLocalInput(end),
      minScore: percent === null || !Number.isFinite(percent) ? null : Math.min(100, Math.max(0, percent)) / 100,
      zone: zone.trim(),
    });
  };
  return (
    <form class="filters" onSubmit={submit} aria-label="Search">
      <label class="field">
        <span class="field-label">Camera</span>
        <select name="camera" value={camera} onChange={(e) => setCamera(e.currentTarget.value)}>
          <option value="">All cameras</option>
          {cameras.map((c) => <option value={c.name}>{c.friendly_name || c.name}</option>)}
          {camera && !cameras.some((c) => c.name === camera) && <option value={camera}>{camera}</option>}
        </select>
      </label>
      <label class="field">
        <span class="field-label">Label</span>
        <input name="label" list="explore-labels" placeholder="any" value={label} onInput={(e) => setLabel(e.currentTarget.value)} />
        <datalist id="explore-labels">{COMMON_LABELS.map((l) => <option value={l} />)}</datalist>
      </label>
      <label class="field">
        <span class="field-label">From</span>
        <input name="start" type="datetime-local" value={start} onInput={(e) => setStart(e.currentTarget.value)} />
      </label>
      <label class="field">
        <span class="field-label">To</span>
        <input name="end" type="datetime-local" value={end} onInput={(e) => setEnd(e.currentTarget.value)} />
      </label>
      <label class="field field-narrow">
        <span class="field-label">Min. score %</span>
        <input name="min_score" type="number" min={0} max={100} step={5} placeholder="any" value={score}
               onInput={(e) => setScore(e.currentTarget.value)} />
      </label>
      <label class="field field-narrow">
        <span class="field-label">Zone</span>
        <input name="zone" placeholder="any" value={zone} onInput={(e) => setZone(e.currentTarget.value)} />
      </label>
      <div class="filter-buttons">
        <button type="submit" class="button primary">Search</button>
        <button type="button" class="button" onClick={() => onSearch({ camera: "", label: "", start: null, end: null, minScore: null, zone: "" })}>Reset</button>
      </div>
    </form>
  );
}
