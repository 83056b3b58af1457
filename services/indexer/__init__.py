"""The indexer: the single writer of the DuckDB catalogue (cameras, chunks, gaps, detections, events), built
from the FOOTAGE, DETECTIONS and EVENTS streams and the camera registry, and the query service that answers from it.

DuckDB lets one process hold a database file read-write and locks every other process out, readers
included, so the writer and the query service share one process and one `duckdb` connection: the writer
commits on its own cursor in its own thread, every query runs on a fresh cursor of the same connection.

Modules:
- `settings`: IndexerSettings (`[indexer]` in spectare.toml, `SPECTARE_INDEXER__*`).
- `tables`: the tables below, opening the file (external access off), the schema version.
- `rows`: stream message -> checked row, or Rejected (garbage, unknown kind, inconsistent); Batch -> Arrow.
- `writer`: IndexWriter, one transaction per batch (Arrow + INSERT ... SELECT), idempotent; `run(job)` for
  other writing jobs.
- `consumer`: durable pull consumers, recreated at every start after the database's own position.
- `service`: Indexer, the process: fetch -> batch -> commit -> ack; registry watch; `Indexer.write(job)` lets
  other modules (retention, exports) write through the one writer, between batches.
- `incidents`: the incident rule (SQL) and the covering-chunks lookup.
- `events`: the event search (SQL): tracked objects overlapping a range, filters by zone.
- `mqtt`: EventBridge, every ObjectEvent again as JSON on `<mqtt_prefix>.events.<cam>.<label>`, which
  nats-server's MQTT listener shows as topic `<mqtt_prefix>/events/<cam>/<label>` (Home Assistant).
- `queries`: Reader (search, footage_at, chunks, status) and Presigner (presigned GET URLs).
- `sqlguard`: read-only SQL for power users, behind guardrails.
- `api`: the NATS micro service (`index.<endpoint>` subjects), answers and error replies.
- The client side (IndexClient, what the CLI, the API and other tools use) is `spectare.core.indexclient`, so that
  no caller imports this service; clip export (remuxing chunks) is `spectare.media.clips`.

Tables (every time is Unix seconds, DOUBLE, as in the messages: no conversion, so a detection at a chunk's
first keyframe compares exactly equal to the chunk's start; Arrow-native; `to_timestamp(time)` shows one):

- `cameras` (name PRIMARY KEY, friendly_name, url with the password redacted, detect, segment_seconds, labels,
  min_score, created_at, updated_at, removed_at, revision): the registry, followed live; a removed camera
  stays with `removed_at` set and its last configuration (from the bucket's history).
- `chunks` (camera, start_time, end_time, key, bucket, session, first_seq, last_seq, frames, bytes, codec,
  width, height, stream_seq): one row per Segment, unique by `key`.
- `gaps` (camera, start_time, end_time, reason, session, stream_seq): unique by (camera, start_time); a gap
  announced open (end_time NULL) and again closed is one row with the end.
- `detections` (camera, time, label, class_id, score, x1, y1, x2, y2, model, session, seq, idx, snapshot_key,
  chunk_key, stream_seq): unique by (camera, session, seq, idx), idx = the finding's index in its keyframe
  (the Detection's `index`; for detections stored before that field, the last part of their Nats-Msg-Id,
  `rows.detection_index`); `chunk_key` = the chunk with start_time <= time < end_time, set when
  the detection is indexed or, when its chunk comes later (the usual case live), when the chunk does.
- `events` (camera, object_id, label, first_seen, last_seen, top_score, snapshot_key, x1..y2, zones,
  entered_zones, stationary, ended_at, seq, session, keyframe_seq, stream_seqs, stream_seq): one row per
  tracked object of the EVENTS stream, unique by (camera, object_id), merged from its messages in any order and
  any number of times: times and score widen, the other fields come from the highest `seq`, `ended_at` stays
  once set (see `writer.MERGE_EVENTS`).
- `progress` (stream, last_seq, messages, garbage): how far each stream is indexed; consumers restart after it.
- `meta` (key, value): schema_version, longest_chunk_s.

Uniqueness is the writer's (anti-joins over the batch's time range), not DuckDB indexes'. Rows are appended in
about time order, so time-range filters skip most row groups. Rebuild: stop the indexer, delete the file,
start it: both streams replay from their start into identical tables (the DETECTIONS stream keeps 30 days by
default, so older detections come back only from a backup or an export).

Adding to the indexer (retention, Parquet export): a module of its own that reads through
`Reader`/a cursor of the connection and writes only through `Indexer.write(job)` (or `IndexWriter.run`), new
endpoints registered in `api.py` with their messages in `spectare.schemas.queries`. The database has external
access off: write Parquet with pyarrow (`cursor.execute(...).fetch_record_batch()`), not `COPY ... TO`.
"""
