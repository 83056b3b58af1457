// The API's answers as the page reads them (services/api/models.py, schemas/queries.py, schemas/messages.py).
// Additive: fields the API is adding are optional here, so the page works before and after they land.

/** A registered camera (GET /cameras, /cameras/byname/<name>): the URL's password shown as ***. */
export interface Camera {
  name: string;
  url: string;
  friendly_name: string;
  detect: boolean;
  segment_seconds: number;
  labels: string[] | null;
  min_score: number | null;
  motion_gate: boolean;
  motion_threshold: number | null;
  keep_days: number | null;
  keep_event_days: number | null;
  max_gb: number | null;
  created_at: string;
  updated_at: string;
}

/** The fields a client sets (POST /cameras adds `name`; PUT /cameras/byname/<name> replaces all of them). */
export type CameraSettings = Omit<Camera, "name" | "created_at" | "updated_at">;

export interface Check {
  ok: boolean;
  detail: string;
}

export type CameraState = "recording" | "camera_away" | "orphaned";

/** What the ingest worker holding a camera says about it (GET /stats `per_camera[].ingest`). */
export interface IngestStatus {
  worker: string;
  /** connecting, streaming, retrying (the last attempt failed) or stopped. */
  state: string;
  /** refused, unreachable, timeout, unauthorized, not_found, no_video, ended, unsupported, other; null: none. */
  error_kind: string | null;
  /** The failure in one line (URL passwords as ***). */
  error: string | null;
  since: number;
  attempts: number;
  updated_at: number;
}

export interface CameraStats {
  name: string;
  state: CameraState;
  ingest_worker: string | null;
  segmenter_worker: string | null;
  last_packet_age_s: number | null;
  fps: number | null;
  bitrate_bps: number | null;
  chunks_last_hour: number | null;
  ingest?: IngestStatus | null;
}

export interface ConsumerLag {
  stream: string;
  consumer: string;
  pending: number;
  ack_pending: number;
  lag: number;
}

export interface Storage {
  source: "indexer" | "unavailable";
  footage_bytes: number | null;
  footage_chunks: number | null;
  snapshots: number | null;
}

export interface Scaling {
  cameras: number;
  max_cameras_per_worker: number;
  ingest_workers_needed: number;
  ingest_workers_live: number;
}

/** GET /stats. */
export interface Stats {
  time: number;
  health: { nats: Check; s3: Check; indexer: Check };
  cameras: { total: number; recording: number; orphaned: number; camera_away?: number };
  per_camera: CameraStats[];
  consumers: ConsumerLag[];
  storage: Storage;
  scaling: Scaling;
}

export interface ChunkRef {
  camera: string;
  key: string;
  start: number;
  end: number;
  bytes: number;
  url: string;
}

/** Detections of one label on one camera close in time (GET /search). Times are Unix seconds. */
export interface Incident {
  camera: string;
  label: string;
  start: number;
  end: number;
  detections: number;
  max_score: number;
  snapshot_key: string | null;
  snapshot_url: string | null;
  /** The snapshot through the API (being added); preferred over the presigned `snapshot_url`. */
  snapshot?: string | null;
  chunks: ChunkRef[];
}

/** One tracked object (GET /search `events[]`): an incident's fields that apply, and what the tracker tells. */
export interface TrackedObject {
  camera: string;
  object_id: string;
  label: string;
  start: number;
  end: number;
  max_score: number;
  snapshot_key: string | null;
  snapshot_url: string | null;
  snapshot?: string | null;
  chunks: ChunkRef[];
  zones: string[];
  entered_zones: string[];
  stationary: boolean;
  ended: boolean;
}

export interface SearchResponse {
  /** Tracked objects (absent from an API without a tracker). */
  events?: TrackedObject[];
  events_total?: number;
  incidents: Incident[];
  total: number;
  merge_gap_s: number;
}

/** One object found on one keyframe (an `event: detection` of GET /detections/stream). */
export interface Detection {
  camera: string;
  time: number;
  label: string;
  class_id: number;
  score: number;
  box: [number, number, number, number];
  model: string;
  session: string;
  seq: number;
  index?: number | null;
  snapshot_key?: string | null;
}

/** POST /auth/login. */
export interface LoginSession {
  token_id: string;
  name: string;
  scope: "read" | "admin";
  expires_at: number;
}
