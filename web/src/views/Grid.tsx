import { useLocation } from "preact-iso";
import { useMemo } from "preact/hooks";
import { api } from "../api";
import { CameraStill } from "../components/CameraStill";
import { DetectionFeed } from "../components/DetectionFeed";
import type { Camera, Stats } from "../types";
import { usePoll } from "../usePoll";
import { STATE_FILTERS, STATE_LABELS, filterTiles, isStateFilter, tilesOf, type Tile } from "./gridTiles";
import "./grid.css";

/** Every camera as a tile (latest still, name, state), filterable by name and state; the live detections beside. */
export function Grid() {
  const location = useLocation();
  const cameras = usePoll((signal) => api<Camera[]>("GET", "/cameras", { signal }), 30_000);
  const stats = usePoll((signal) => api<Stats>("GET", "/stats", { signal }), 5_000);
  const text = location.query.q ?? "";
  const state = isStateFilter(location.query.state) ? location.query.state : "all";

  const tiles = useMemo(() => tilesOf(cameras.data ?? [], stats.data), [cameras.data, stats.data]);
  const shown = useMemo(() => filterTiles(tiles, text, state), [tiles, text, state]);

  // The filters live in the URL (replace, not push: typing is not navigation).
  const setFilter = (q: string, s: string) => {
    const query = new URLSearchParams();
    if (q) query.set("q", q);
    if (s !== "all") query.set("state", s);
    const search = query.toString();
    location.route(search ? `/?${search}` : "/", true);
  };

  return (
    <div class="grid-page">
      <section class="grid-main" aria-label="Cameras">
        <div class="toolbar">
          <h1>Live</h1>
          <label class="field-inline">
            <span class="sr-only">Filter cameras by name</span>
            <input type="search" placeholder="Filter by name" value={text}
                   onInput={(e) => setFilter(e.currentTarget.value, state)} />
          </label>
          <label class="field-inline">
            <span class="sr-only">Filter cameras by state</span>
            <select value={state} onChange={(e) => setFilter(text, e.currentTarget.value)}>
              {STATE_FILTERS.map(([key, label]) => <option value={key}>{label}</option>)}
            </select>
          </label>
          <span class="muted count">{cameras.data ? `${shown.length} of ${tiles.length} cameras` : ""}</span>
        </div>
        {cameras.error && !cameras.data && <p class="error-box" role="alert">Cameras could not be loaded: {cameras.error}</p>}
        {stats.error && <p class="warn-box" role="status">Camera states are not current: {stats.error}</p>}
        {cameras.data && tiles.length === 0 && (
          <div class="empty">
            <p>No cameras yet.</p>
            <p><a class="button" href="/settings/cameras?add=1">Add a camera</a></p>
          </div>
        )}
        {tiles.length > 0 && shown.length === 0 && <p class="empty">No camera matches the filter.</p>}
        <ul class="tiles">
          {shown.map((tile) => <CameraTile key={tile.name} tile={tile} />)}
        </ul>
      </section>
      <aside class="grid-side">
        <DetectionFeed />
      </aside>
    </div>
  );
}

function CameraTile({ tile }: { tile: Tile }) {
  return (
    <li class="tile" data-camera={tile.name}>
      <a href={`/cameras/${encodeURIComponent(tile.name)}`} class="tile-link">
        <CameraStill name={tile.name} title={tile.title} />
        <div class="tile-info">
          <span class="tile-title" title={tile.name}>{tile.title}</span>
          <span class="badges">
            <span class={`badge badge-${tile.state}`}>{STATE_LABELS[tile.state]}</span>
            {!tile.detect && <span class="badge badge-detect-off">detection off</span>}
          </span>
        </div>
        {tile.error && <p class="tile-error" title={tile.error}>{tile.error}</p>}
      </a>
    </li>
  );
}
