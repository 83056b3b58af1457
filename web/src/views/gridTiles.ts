// The live grid's tiles, pure: cameras (GET /cameras) joined with their state (GET /stats), and the filters.
import type { Camera, CameraState, Stats } from "../types";

export type TileState = CameraState | "unknown";

export interface Tile {
  name: string;
  title: string;
  state: TileState;
  detect: boolean;
  /** Why the camera does not record, as ingest says (connection refused, wrong password, ...). */
  error: string | null;
}

export const STATE_LABELS: Record<TileState, string> = {
  recording: "recording",
  camera_away: "camera away",
  orphaned: "orphaned",
  unknown: "…",
};

export type StateFilter = "all" | CameraState | "detection_off";

export const STATE_FILTERS: [StateFilter, string][] = [
  ["all", "All states"],
  ["recording", "Recording"],
  ["camera_away", "Camera away"],
  ["orphaned", "Orphaned"],
  ["detection_off", "Detection off"],
];

export function tilesOf(cameras: Camera[], stats: Stats | null): Tile[] {
  const byName = new Map((stats?.per_camera ?? []).map((c) => [c.name, c]));
  return cameras.map((camera) => {
    const measured = byName.get(camera.name);
    return {
      name: camera.name,
      title: camera.friendly_name || camera.name,
      state: measured?.state ?? "unknown",
      detect: camera.detect,
      error: measured?.ingest?.error || null,
    };
  });
}

/** Tiles whose name or friendly name contains `text` (any case) and whose state matches `state`. */
export function filterTiles(tiles: Tile[], text: string, state: StateFilter): Tile[] {
  const wanted = text.trim().toLowerCase();
  return tiles.filter((tile) => {
    if (wanted && !tile.name.toLowerCase().includes(wanted) && !tile.title.toLowerCase().includes(wanted)) return false;
    if (state === "all") return true;
    if (state === "detection_off") return !tile.detect;
    return tile.state === state;
  });
}

export function isStateFilter(text: string | undefined): text is StateFilter {
  return STATE_FILTERS.some(([key]) => key === text);
}
