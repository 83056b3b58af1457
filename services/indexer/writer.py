"""The index's only writer: one batch of rows per transaction, through Arrow, idempotent.

`IndexWriter.commit(batch, cameras)` runs one transaction (call it from one thread at a time):
  1. chunks: the batch's Arrow table, first copy of each key, anti-joined against the chunks of the batch's
     time range (a chunk announced twice is stored once);
  2. gaps: merged by (camera, start_time): the end is the latest known (a gap announced open, then closed),
     reason and session come from the latest announcement in stream order;
  3. detections: first copy of each (camera, session, seq, idx), anti-joined likewise;
  4. chunk links: every detection in the time range of the batch's chunks and detections gets `chunk_key` =
     the chunk of its camera with start_time <= time < end_time (the latest-starting one, then the smallest
     key, should chunks ever overlap): so a detection indexed before its chunk is linked when the chunk comes,
     and the result does not depend on which stream was read first;
  5. events: the batch's messages merged per object into its row (`MERGE_EVENTS`): so the row is the same
     whatever order and however many times the messages come;
  6. cameras: registry changes, applied when newer than the row's revision;
  7. progress: each stream's last committed sequence, message and garbage counts.
Only after the commit does the caller ack the messages. Replaying any of them (a crash between commit and
ack, a redelivery, a rebuild from the streams) leaves the tables as they are.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from spectare.core.redact import redact
from spectare.schemas import CameraConfig

from .rows import EVENT_SCHEMA, Batch, StreamTally

log = logging.getLogger(__name__)

INSERT_CHUNKS = """
INSERT INTO chunks
SELECT b.* FROM (SELECT * FROM batch_chunks QUALIFY row_number() OVER (PARTITION BY key ORDER BY stream_seq) = 1) b
ANTI JOIN (SELECT key FROM chunks WHERE start_time BETWEEN $lo AND $hi) c ON c.key = b.key
"""

# The longest chunk so far: how far before a moment a chunk holding it may start (searches need it).
LONGEST_CHUNK = """
INSERT INTO meta SELECT 'longest_chunk_s', max(end_time - start_time)::VARCHAR FROM batch_chunks
ON CONFLICT (key) DO UPDATE SET value = greatest(meta.value::DOUBLE, excluded.value::DOUBLE)::VARCHAR
"""

MERGE_GAPS = """
WITH b AS (
    SELECT camera, start_time, max(end_time) AS end_time, arg_max(reason, stream_seq) AS reason,
           arg_max_null(session, stream_seq) AS session, max(stream_seq) AS stream_seq
    FROM batch_gaps GROUP BY camera, start_time
)
MERGE INTO gaps g USING b ON g.camera = b.camera AND g.start_time = b.start_time
WHEN MATCHED THEN UPDATE SET
    end_time = greatest(g.end_time, b.end_time),
    reason = CASE WHEN b.stream_seq > g.stream_seq THEN b.reason ELSE g.reason END,
    session = CASE WHEN b.stream_seq > g.stream_seq THEN b.session ELSE g.session END,
    stream_seq = greatest(g.stream_seq, b.stream_seq)
WHEN NOT MATCHED THEN INSERT (camera, start_time, end_time, reason, session, stream_seq)
    VALUES (b.camera, b.start_time, b.end_time, b.reason, b.session, b.stream_seq)
"""

# A detection's identity is (camera, session, seq, idx); one without an index (neither its `index` field nor its
# message id gives one) is known by its stream sequence alone.
INSERT_DETECTIONS = """
INSERT INTO detections
SELECT b.camera, b.time, b.label, b.class_id, b.score, b.x1, b.y1, b.x2, b.y2, b.model, b.session, b.seq, b.idx,
       b.snapshot_key, NULL, b.stream_seq
FROM (SELECT *, coalesce(idx, -1 - stream_seq) AS ident FROM batch_detections
      QUALIFY row_number() OVER (PARTITION BY camera, session, seq, ident ORDER BY stream_seq) = 1) b
ANTI JOIN (SELECT camera, session, seq, coalesce(idx, -1 - stream_seq) AS ident FROM detections
           WHERE time BETWEEN $lo AND $hi) d
    ON d.camera = b.camera AND d.session = b.session AND d.seq = b.seq AND d.ident = b.ident
"""

LINK_CHUNKS = """
WITH ranges AS (
    SELECT camera, min(lo) AS lo, max(hi) AS hi FROM (
        SELECT camera, time AS lo, time AS hi FROM batch_detections
        UNION ALL SELECT camera, start_time, end_time FROM batch_chunks
    ) GROUP BY camera
), best AS (
    SELECT d.stream_seq, first(c.key ORDER BY c.start_time DESC, c.key) AS key
    FROM detections d
    JOIN ranges r ON d.camera = r.camera AND d.time BETWEEN r.lo AND r.hi
    JOIN chunks c ON c.camera = d.camera AND c.start_time <= d.time AND d.time < c.end_time
    WHERE d.time BETWEEN $lo AND $hi AND c.start_time <= $hi AND c.end_time > $lo
    GROUP BY d.stream_seq
)
UPDATE detections SET chunk_key = best.key FROM best
WHERE detections.stream_seq = best.stream_seq AND detections.time BETWEEN $lo AND $hi
  AND detections.chunk_key IS DISTINCT FROM best.key
"""

# One object's messages, in any order, any number of times, give one row: first_seen, last_seen and top_score
# widen; the fields that change (box, zones, stationary, session) come from the highest seq; the snapshot from
# the highest seq that names one; ended_at is the `end`'s time once one came.
MERGE_EVENTS = """
WITH b AS (
    SELECT camera, object_id, arg_max(label, seq) AS label, min(first_seen) AS first_seen,
           max(last_seen) AS last_seen, max(top_score) AS top_score,
           arg_max(snapshot_key, seq) FILTER (WHERE snapshot_key IS NOT NULL) AS snapshot_key,
           arg_max(x1, seq) AS x1, arg_max(y1, seq) AS y1, arg_max(x2, seq) AS x2, arg_max(y2, seq) AS y2,
           arg_max(zones, seq) AS zones, arg_max(entered_zones, seq) AS entered_zones,
           arg_max(stationary, seq) AS stationary, min(time) FILTER (WHERE type = 'end') AS ended_at,
           max(seq) AS seq, arg_max(session, seq) AS session, arg_max(keyframe_seq, seq) AS keyframe_seq,
           list_sort(list_distinct(list(stream_seq))) AS stream_seqs, max(stream_seq) AS stream_seq,
           max(seq) FILTER (WHERE snapshot_key IS NOT NULL) AS snapshot_seq
    FROM batch_events GROUP BY camera, object_id
)
MERGE INTO events e USING b ON e.camera = b.camera AND e.object_id = b.object_id
WHEN MATCHED THEN UPDATE SET
    first_seen = least(e.first_seen, b.first_seen), last_seen = greatest(e.last_seen, b.last_seen),
    top_score = greatest(e.top_score, b.top_score),
    snapshot_key = CASE WHEN b.snapshot_key IS NOT NULL AND (e.snapshot_key IS NULL OR b.snapshot_seq > e.seq)
                        THEN b.snapshot_key ELSE e.snapshot_key END,
    label = CASE WHEN b.seq > e.seq THEN b.label ELSE e.label END,
    x1 = CASE WHEN b.seq > e.seq THEN b.x1 ELSE e.x1 END, y1 = CASE WHEN b.seq > e.seq THEN b.y1 ELSE e.y1 END,
    x2 = CASE WHEN b.seq > e.seq THEN b.x2 ELSE e.x2 END, y2 = CASE WHEN b.seq > e.seq THEN b.y2 ELSE e.y2 END,
    zones = CASE WHEN b.seq > e.seq THEN b.zones ELSE e.zones END,
    entered_zones = CASE WHEN b.seq > e.seq THEN b.entered_zones ELSE e.entered_zones END,
    stationary = CASE WHEN b.seq > e.seq THEN b.stationary ELSE e.stationary END,
    ended_at = coalesce(least(e.ended_at, b.ended_at), e.ended_at, b.ended_at),
    session = CASE WHEN b.seq > e.seq THEN b.session ELSE e.session END,
    keyframe_seq = CASE WHEN b.seq > e.seq THEN b.keyframe_seq ELSE e.keyframe_seq END,
    seq = greatest(e.seq, b.seq),
    stream_seqs = list_sort(list_distinct(list_concat(e.stream_seqs, b.stream_seqs))),
    stream_seq = greatest(e.stream_seq, b.stream_seq)
WHEN NOT MATCHED THEN INSERT (camera, object_id, label, first_seen, last_seen, top_score, snapshot_key, x1, y1, x2,
                              y2, zones, entered_zones, stationary, ended_at, seq, session, keyframe_seq,
                              stream_seqs, stream_seq)
    VALUES (b.camera, b.object_id, b.label, b.first_seen, b.last_seen, b.top_score, b.snapshot_key, b.x1, b.y1,
            b.x2, b.y2, b.zones, b.entered_zones, b.stationary, b.ended_at, b.seq, b.session, b.keyframe_seq,
            b.stream_seqs, b.stream_seq)
"""

UPSERT_CAMERA = """
INSERT INTO cameras VALUES ($name, $friendly_name, $url, $detect, $segment_seconds, $labels, $min_score,
                            $created_at, $updated_at, $removed_at, $revision)
ON CONFLICT (name) DO UPDATE SET friendly_name = excluded.friendly_name, url = excluded.url,
    detect = excluded.detect, segment_seconds = excluded.segment_seconds, labels = excluded.labels,
    min_score = excluded.min_score, created_at = excluded.created_at, updated_at = excluded.updated_at,
    removed_at = excluded.removed_at, revision = excluded.revision
WHERE excluded.revision > cameras.revision
"""

REMOVE_CAMERA = """
INSERT INTO cameras (name, friendly_name, removed_at, revision) VALUES ($name, '', $at, $revision)
ON CONFLICT (name) DO UPDATE SET removed_at = excluded.removed_at, revision = excluded.revision
WHERE excluded.revision > cameras.revision
"""

UPSERT_PROGRESS = """
INSERT INTO progress VALUES ($stream, $last_seq, $messages, $garbage)
ON CONFLICT (stream) DO UPDATE SET last_seq = greatest(progress.last_seq, excluded.last_seq),
    messages = progress.messages + excluded.messages, garbage = progress.garbage + excluded.garbage
"""


@dataclass(frozen=True)
class CameraUpdate:
    """A registry change for the cameras table. A removal (`removed`, at `at` in Unix seconds) carries the
    camera's last configuration when the registry's history still has it."""

    name: str
    config: CameraConfig | None
    revision: int
    at: float
    removed: bool = False


@dataclass
class WriteResult:
    chunks: int = 0
    gaps: int = 0
    detections: int = 0
    events: int = 0
    linked: int = 0
    cameras: int = 0
    seconds: float = 0.0


class IndexWriter:
    """Writes batches into the index on its own cursor of `con`; use from one thread at a time."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.cur = con.cursor()

    def positions(self) -> dict[str, StreamTally]:
        rows = self.cur.execute("SELECT stream, last_seq, messages, garbage FROM progress").fetchall()
        return {stream: StreamTally(last_seq, messages, garbage) for stream, last_seq, messages, garbage in rows}

    def commit(self, batch: Batch, cameras: Sequence[CameraUpdate] = ()) -> WriteResult:
        chunks, gaps, detections = batch.tables()
        return self.commit_tables(chunks, gaps, detections, cameras, batch.streams, batch.events_table())

    def commit_tables(self, chunks: pa.Table, gaps: pa.Table, detections: pa.Table,
                      cameras: Sequence[CameraUpdate] = (),
                      streams: dict[str, StreamTally] | None = None,
                      events: pa.Table | None = None) -> WriteResult:
        """One transaction: the Arrow tables (schemas as in `rows.py`), camera changes and stream progress."""
        events = events if events is not None else EVENT_SCHEMA.empty_table()
        began = time.perf_counter()
        result = WriteResult()
        cur = self.cur
        cur.register("batch_chunks", chunks)
        cur.register("batch_gaps", gaps)
        cur.register("batch_detections", detections)
        cur.register("batch_events", events)
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                if chunks.num_rows:
                    result.chunks = _count(cur.execute(INSERT_CHUNKS, _range(chunks, "start_time", "start_time")))
                    cur.execute(LONGEST_CHUNK)
                if gaps.num_rows:
                    result.gaps = _count(cur.execute(MERGE_GAPS))
                if detections.num_rows:
                    result.detections = _count(cur.execute(INSERT_DETECTIONS, _range(detections, "time", "time")))
                if chunks.num_rows or detections.num_rows:
                    result.linked = _count(cur.execute(LINK_CHUNKS, _link_range(chunks, detections)))
                if events.num_rows:
                    result.events = _count(cur.execute(MERGE_EVENTS))
                for update in cameras:
                    result.cameras += self._camera(update)
                for stream, tally in (streams or {}).items():
                    cur.execute(UPSERT_PROGRESS, {"stream": stream, "last_seq": tally.last_seq,
                                                  "messages": tally.messages, "garbage": tally.garbage})
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        finally:
            for name in ("batch_chunks", "batch_gaps", "batch_detections", "batch_events"):
                cur.unregister(name)
        result.seconds = time.perf_counter() - began
        return result

    def run(self, job: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        """Run another writing job (retention, maintenance) on the writer's cursor, in the writer's turn."""
        return job(self.cur)

    def _camera(self, update: CameraUpdate) -> int:
        if update.config is None:
            self.cur.execute(REMOVE_CAMERA, {"name": update.name, "at": update.at, "revision": update.revision})
        else:
            c = update.config
            self.cur.execute(UPSERT_CAMERA, {
                "name": c.name, "friendly_name": c.friendly_name, "url": redact(c.url), "detect": c.detect,
                "segment_seconds": c.segment_seconds, "labels": list(c.labels) if c.labels is not None else None,
                "min_score": c.min_score, "created_at": c.created_at, "updated_at": c.updated_at,
                "removed_at": update.at if update.removed else None, "revision": update.revision,
            })
        return _count(self.cur)


def _count(cur: duckdb.DuckDBPyConnection) -> int:
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _range(table: pa.Table, low: str, high: str) -> dict[str, float]:
    lo = pc.min(table[low]).as_py()
    hi = pc.max(table[high]).as_py()
    return {"lo": lo, "hi": hi}


def _link_range(chunks: pa.Table, detections: pa.Table) -> dict[str, float]:
    bounds = []
    if chunks.num_rows:
        bounds.append(_range(chunks, "start_time", "end_time"))
    if detections.num_rows:
        bounds.append(_range(detections, "time", "time"))
    return {"lo": min(b["lo"] for b in bounds), "hi": max(b["hi"] for b in bounds)}
