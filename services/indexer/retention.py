"""Retention: footage and detections older than each camera's policy, or beyond its byte cap, are deleted from
S3, from the index and from the streams the index is rebuilt from, in step and crash-safe.

Policy per camera (registry fields, else the indexer's defaults): `keep_days` for plain continuous footage,
`keep_event_days` (longer) for footage around detections and tracked objects (a chunk with a detection, or
overlapping an object's first_seen..last_seen, within `event_padding_s` of it) and for the detections and
objects (`events` rows, their EVENTS messages) themselves with their snapshots, and `max_gb`: beyond it the
oldest plain footage goes first, then the oldest event footage.

A sweep never leaves a row pointing at a deleted object, and leaves no orphan object behind:
  1. plan (read only; `--dry-run` stops here);
  2. one transaction: the doomed objects and stream messages go into `retention_queue`, their rows are
     deleted (detections whose chunk goes lose their chunk link);
  3. for each queued item: its stream message is deleted (so a rebuild from the streams cannot bring the
     row back), then its S3 object;
  4. the queue is emptied.
Killed anywhere, the next sweep first finishes what is queued (deletions are idempotent), then plans anew.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import duckdb
import nats.errors
import pyarrow as pa
from minio import Minio
from minio.deleteobjects import DeleteObject
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from spectare.schemas import CameraConfig

from .settings import IndexerSettings

log = logging.getLogger(__name__)

DAY_S = 86_400.0
DRAIN_BATCH = 500

QUEUE_DDL = """
CREATE TABLE IF NOT EXISTS retention_queue (
    kind VARCHAR NOT NULL,          -- 'chunk', 'snapshot' (an S3 object) or 'message' (a stream message only)
    bucket VARCHAR,
    key VARCHAR,                    -- S3 key of a chunk or snapshot
    stream VARCHAR,                 -- stream holding the message that announced it
    stream_seq BIGINT,
    queued_at DOUBLE NOT NULL
);
"""

# The chunks to delete: too old for their kind (plain or event footage), or beyond the camera's byte cap.
PLAN_CHUNKS = """
WITH policy AS (SELECT * FROM retention_policy),
marked AS (
    SELECT c.camera, c.key, c.bucket, c.bytes, c.start_time, c.end_time, c.stream_seq,
           coalesce(p.keep_s, $keep_s) AS keep_s, coalesce(p.keep_event_s, $keep_event_s) AS keep_event_s,
           coalesce(p.max_bytes, $max_bytes) AS max_bytes,
           EXISTS (SELECT 1 FROM detections d WHERE d.camera = c.camera
                   AND d.time >= c.start_time - $pad AND d.time < c.end_time + $pad)
           OR EXISTS (SELECT 1 FROM events e WHERE e.camera = c.camera
                      AND e.last_seen >= c.start_time - $pad AND e.first_seen < c.end_time + $pad) AS event
    FROM chunks c LEFT JOIN policy p ON p.camera = c.camera
),
aged AS (
    SELECT *, end_time < $now - CASE WHEN event THEN keep_event_s ELSE keep_s END AS too_old FROM marked
),
capped AS (
    SELECT *, sum(bytes) OVER (PARTITION BY camera ORDER BY event DESC, start_time DESC
                               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS kept_bytes
    FROM aged WHERE NOT too_old
)
SELECT camera, key, bucket, bytes, stream_seq, 'age' AS reason FROM aged WHERE too_old
UNION ALL
SELECT camera, key, bucket, bytes, stream_seq, 'size' AS reason FROM capped
WHERE max_bytes IS NOT NULL AND kept_bytes > max_bytes
"""

# Detections older than their camera's event retention (their snapshots go with them).
PLAN_DETECTIONS = """
SELECT d.camera, d.snapshot_key, d.stream_seq
FROM detections d LEFT JOIN retention_policy p ON p.camera = d.camera
WHERE d.time < $now - coalesce(p.keep_event_s, $keep_event_s)
"""

# Tracked objects last seen before their camera's event retention: their messages and snapshots go with them.
PLAN_EVENTS = """
SELECT e.camera, e.snapshot_key, e.stream_seqs
FROM events e LEFT JOIN retention_policy p ON p.camera = e.camera
WHERE e.last_seen < $now - coalesce(p.keep_event_s, $keep_event_s)
"""


@dataclass(frozen=True)
class Policy:
    keep_s: float
    keep_event_s: float
    max_bytes: int | None


@dataclass
class SweepReport:
    dry_run: bool
    chunks: int = 0
    chunk_bytes: int = 0
    detections: int = 0
    events: int = 0
    snapshots: int = 0
    resumed: int = 0  # queued items of an interrupted sweep finished first
    by_camera: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0


def policy_of(config: CameraConfig | None, ix: IndexerSettings) -> Policy:
    keep_days = config.keep_days if config is not None and config.keep_days is not None else ix.keep_days
    event_days = (config.keep_event_days if config is not None and config.keep_event_days is not None
                  else ix.keep_event_days)
    max_gb = config.max_gb if config is not None and config.max_gb is not None else ix.max_gb
    return Policy(keep_days * DAY_S, max(event_days, keep_days) * DAY_S,
                  None if max_gb is None else int(max_gb * 1e9))


def policy_table(cameras: Iterable[CameraConfig], ix: IndexerSettings) -> pa.Table:
    rows = [(c.name, policy_of(c, ix)) for c in cameras]
    return pa.table({
        "camera": pa.array([name for name, _ in rows], pa.string()),
        "keep_s": pa.array([p.keep_s for _, p in rows], pa.float64()),
        "keep_event_s": pa.array([p.keep_event_s for _, p in rows], pa.float64()),
        "max_bytes": pa.array([p.max_bytes for _, p in rows], pa.int64()),
    })


def plan(cur: duckdb.DuckDBPyConnection, policies: pa.Table, ix: IndexerSettings,
         now: float) -> tuple[list[tuple], list[tuple]]:
    """(chunks, detections) to delete: (camera, key, bucket, bytes, stream_seq, reason) and
    (camera, snapshot_key, stream_seq). Cameras without a policy row (removed ones) get the defaults."""
    default = policy_of(None, ix)
    params = {"now": now, "keep_s": default.keep_s, "keep_event_s": default.keep_event_s,
              "max_bytes": default.max_bytes, "pad": ix.event_padding_s}
    cur.register("retention_policy", policies)
    try:
        chunks = cur.execute(PLAN_CHUNKS, params).fetchall()
        detections = cur.execute(PLAN_DETECTIONS, {"now": now, "keep_event_s": default.keep_event_s}).fetchall()
    finally:
        cur.unregister("retention_policy")
    return chunks, detections


def plan_events(cur: duckdb.DuckDBPyConnection, policies: pa.Table, ix: IndexerSettings,
                now: float) -> list[tuple]:
    """Tracked objects to delete: (camera, snapshot_key, stream_seqs)."""
    cur.register("retention_policy", policies)
    try:
        return cur.execute(PLAN_EVENTS, {"now": now, "keep_event_s": policy_of(None, ix).keep_event_s}).fetchall()
    finally:
        cur.unregister("retention_policy")


def queue_and_delete_rows(cur: duckdb.DuckDBPyConnection, chunks: list[tuple], detections: list[tuple],
                          footage_stream: str, detections_stream: str, now: float,
                          events: Sequence[tuple] = (), events_stream: str = "") -> None:
    """Step 2, one transaction: queue what goes, delete its rows."""
    doomed_events = pa.table({
        "camera": pa.array([e[0] for e in events], pa.string()),
        "snapshot_key": pa.array([e[1] for e in events], pa.string()),
        "stream_seqs": pa.array([list(e[2]) for e in events], pa.list_(pa.int64())),
    })
    doomed_chunks = pa.table({
        "key": pa.array([c[1] for c in chunks], pa.string()),
        "bucket": pa.array([c[2] for c in chunks], pa.string()),
        "stream_seq": pa.array([c[4] for c in chunks], pa.int64()),
    })
    doomed_detections = pa.table({
        "camera": pa.array([d[0] for d in detections], pa.string()),
        "snapshot_key": pa.array([d[1] for d in detections], pa.string()),
        "stream_seq": pa.array([d[2] for d in detections], pa.int64()),
    })
    cur.register("doomed_chunks", doomed_chunks)
    cur.register("doomed_detections", doomed_detections)
    cur.register("doomed_events", doomed_events)
    try:
        cur.execute("BEGIN TRANSACTION")
        try:
            cur.execute("""INSERT INTO retention_queue SELECT 'chunk', bucket, key, $stream, stream_seq, $now
                           FROM doomed_chunks""", {"stream": footage_stream, "now": now})
            cur.execute("""INSERT INTO retention_queue SELECT 'message', NULL, NULL, $stream, stream_seq, $now
                           FROM doomed_detections""", {"stream": detections_stream, "now": now})
            cur.execute("""INSERT INTO retention_queue SELECT DISTINCT 'snapshot', NULL, snapshot_key, NULL, NULL, $now
                           FROM doomed_detections WHERE snapshot_key IS NOT NULL""", {"now": now})
            cur.execute("DELETE FROM chunks WHERE key IN (SELECT key FROM doomed_chunks)")
            cur.execute("UPDATE detections SET chunk_key = NULL WHERE chunk_key IN (SELECT key FROM doomed_chunks)")
            cur.execute("""DELETE FROM detections WHERE stream_seq IN (SELECT stream_seq FROM doomed_detections)""")
            cur.execute("""INSERT INTO retention_queue SELECT 'message', NULL, NULL, $stream, unnest(stream_seqs), $now
                           FROM doomed_events""", {"stream": events_stream, "now": now})
            cur.execute("""INSERT INTO retention_queue SELECT DISTINCT 'snapshot', NULL, snapshot_key, NULL, NULL, $now
                           FROM doomed_events WHERE snapshot_key IS NOT NULL""", {"now": now})
            cur.execute("""DELETE FROM events WHERE stream_seq IN (SELECT list_max(stream_seqs) FROM doomed_events)""")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
    finally:
        cur.unregister("doomed_chunks")
        cur.unregister("doomed_detections")
        cur.unregister("doomed_events")


class Sweeper:
    """Runs sweeps for the indexer: `write(job)` runs a job on the writer's cursor in the writer's turn."""

    def __init__(self, js: JetStreamContext, s3: Minio, default_bucket: str, ix: IndexerSettings,
                 footage_stream: str, detections_stream: str, events_stream: str,
                 write: Callable[[Callable[[duckdb.DuckDBPyConnection], Any]], Awaitable[Any]],
                 cameras: Callable[[], Awaitable[list[CameraConfig]]]) -> None:
        self.js = js
        self.s3 = s3
        self.default_bucket = default_bucket
        self.ix = ix
        self.footage_stream = footage_stream
        self.detections_stream = detections_stream
        self.events_stream = events_stream
        self.write = write
        self.cameras = cameras
        self.lock = asyncio.Lock()  # one sweep at a time (schedule and `spectare retention run`)

    async def sweep(self, dry_run: bool = False, now: float | None = None) -> SweepReport:
        async with self.lock:
            began = time.perf_counter()
            report = SweepReport(dry_run=dry_run)
            if not dry_run:
                report.resumed = await self._drain()
            now = time.time() if now is None else now
            policies = policy_table(await self.cameras(), self.ix)
            chunks, detections = await self.write(lambda cur: plan(cur, policies, self.ix, now))
            events = await self.write(lambda cur: plan_events(cur, policies, self.ix, now))
            for camera, _key, _bucket, size, _seq, _reason in chunks:
                stats = report.by_camera.setdefault(camera, {"chunks": 0, "bytes": 0, "detections": 0})
                stats["chunks"] += 1
                stats["bytes"] += size
            for camera, _snapshot, _seq in detections:
                report.by_camera.setdefault(camera, {"chunks": 0, "bytes": 0, "detections": 0})["detections"] += 1
            report.chunks, report.chunk_bytes = len(chunks), sum(c[3] for c in chunks)
            report.detections, report.events = len(detections), len(events)
            report.snapshots = len({d[1] for d in detections if d[1]} | {e[1] for e in events if e[1]})
            if not dry_run and (chunks or detections or events):
                await self.write(lambda cur: queue_and_delete_rows(
                    cur, chunks, detections, self.footage_stream, self.detections_stream, now, events,
                    self.events_stream))
                await self._drain()
            report.seconds = time.perf_counter() - began
            if not dry_run and (report.chunks or report.detections or report.events or report.resumed):
                log.info("retention: deleted %d chunks (%.1f MB), %d detections, %d events, %d snapshots in %.1fs%s",
                         report.chunks, report.chunk_bytes / 1e6, report.detections, report.events, report.snapshots,
                         report.seconds, f" (finished {report.resumed} items of an interrupted sweep)"
                         if report.resumed else "")
            return report

    async def _drain(self) -> int:
        """Steps 3 and 4 for everything queued: stream messages, then objects, then the queue rows."""
        done = 0
        while True:
            batch = await self.write(lambda cur: cur.execute(
                "SELECT rowid, kind, bucket, key, stream, stream_seq FROM retention_queue ORDER BY rowid LIMIT $n",
                {"n": DRAIN_BATCH}).fetchall())
            if not batch:
                return done
            for _rowid, _kind, _bucket, _key, stream, seq in batch:
                if stream is not None and seq is not None:
                    await self._delete_message(stream, seq)
            objects: dict[str, list[DeleteObject]] = {}
            for _rowid, kind, bucket, key, _stream, _seq in batch:
                if kind in ("chunk", "snapshot") and key:
                    objects.setdefault(bucket or self.default_bucket, []).append(DeleteObject(key))
            for bucket, keys in objects.items():
                await asyncio.to_thread(self._remove_objects, bucket, keys)
            await self.write(partial(_forget_queued, last=batch[-1][0]))
            done += len(batch)

    async def _delete_message(self, stream: str, seq: int) -> None:
        try:
            await self.js.delete_msg(stream, seq)
        except NotFoundError:
            pass  # already gone: deleted before a crash, or aged out of the stream
        except nats.js.errors.APIError as exc:
            if exc.err_code not in (10037, 10057):  # no message found / stream has no such message
                raise

    def _remove_objects(self, bucket: str, keys: list[DeleteObject]) -> None:
        errors = list(self.s3.remove_objects(bucket, keys))  # lazy: iterating sends the requests
        failed = [e for e in errors if e.code != "NoSuchKey"]
        if failed:
            raise RuntimeError(f"S3 refused to delete {len(failed)} object(s), e.g. {failed[0].name}: "
                               f"{failed[0].code} {failed[0].message}")


def _forget_queued(cur: duckdb.DuckDBPyConnection, last: int) -> None:
    """Empty the retention queue up to row `last` (its objects and messages are deleted)."""
    cur.execute("DELETE FROM retention_queue WHERE rowid <= $last", {"last": last})
