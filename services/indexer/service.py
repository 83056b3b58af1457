"""The indexer process: stream consumers -> batches -> the writer, the registry watch, and the query service.

One task per stream fetches from its durable consumer into one bounded queue; the writer loop takes up to
`batch_size` items or what arrives within `flush_interval_s`, commits them in one DuckDB transaction (in its
own thread), then acks: rejected messages are terminated, and the batch's last message of each stream is
acked (AckPolicy.ALL: that settles every message before it). Messages the database already holds (their
stream sequence is at or below the committed position) are acked without being written again.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any

import duckdb
from nats.aio.msg import Msg

from spectare.core.backoff import Backoff
from spectare.core.consumer import Ack, settle
from spectare.core.logs import LogOnce
from spectare.core.metrics import ConsumerLag, register_stats
from spectare.core.registry import CameraRegistry
from spectare.core.retry import Outage, describe_error
from spectare.core.service import ServiceContext
from spectare.core.store import s3_client
from spectare.schemas import Detection, Gap, ObjectEvent, Segment
from spectare.schemas.queries import ExportRequest, RetentionRequest

from .api import QueryService
from .consumer import StreamFeed, feeds_for
from .maintenance import Maintenance
from .mqtt import METRICS as BRIDGE_METRICS
from .mqtt import EventBridge
from .queries import Presigner, Reader
from .rows import Batch, Rejected, detection_row, event_row, footage_row
from .settings import IndexerSettings
from .tables import open_database
from .writer import CameraUpdate, IndexWriter

log = logging.getLogger(__name__)

STATS_EVERY_S = 60.0
METRICS = {
    "messages": "footage and detection messages taken from the streams",
    "chunks": "chunks indexed",
    "gaps": "gap announcements indexed",
    "detections": "detections indexed",
    "events": "tracked-object event rows written (one per object per batch)",
    "garbage": "messages terminated as undecodable",
    "unknown": "messages of an unknown kind terminated",
    "inconsistent": "messages terminated as inconsistent",
    "replayed": "messages delivered again that the index already had",
    "commits": "transactions committed",
    "commit_retries": "failed commits retried",
    "commit_seconds": "seconds spent committing",
}


@dataclass
class IndexerStats:
    messages: int = 0
    chunks: int = 0
    gaps: int = 0
    detections: int = 0
    events: int = 0
    linked: int = 0
    cameras: int = 0
    garbage: int = 0
    unknown: int = 0
    inconsistent: int = 0
    replayed: int = 0  # delivered again, already in the index
    commits: int = 0
    commit_retries: int = 0
    commit_seconds: float = 0.0

    def summary(self) -> str:
        return ", ".join(f"{f.name} {getattr(self, f.name):.1f}" if f.type is float else
                         f"{f.name} {getattr(self, f.name)}" for f in fields(self))


@dataclass
class Pending:
    """What the next commit carries, and what to settle after it."""

    batch: Batch = field(default_factory=Batch)
    cameras: list[CameraUpdate] = field(default_factory=list)
    last: dict[str, Msg] = field(default_factory=dict)  # per stream, the message to ack (AckPolicy.ALL)
    last_seq: dict[str, int] = field(default_factory=dict)
    rejected: list[Msg] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.batch) + len(self.cameras) + len(self.rejected)


class Indexer:
    def __init__(self, ctx: ServiceContext, ix: IndexerSettings) -> None:
        self.ctx = ctx
        self.ix = ix
        self.names = ctx.settings.names
        self.path = ix.database_path(ctx.settings)
        self.stats = IndexerStats()
        self.log_once = LogOnce(log)
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=2 * ix.batch_size)
        self.write_pool = ThreadPoolExecutor(1, thread_name_prefix="index-writer")
        self.committed: dict[str, int] = {}
        self.outage = Outage("index database writes")
        self.writer: IndexWriter | None = None

    async def write(self, job: Callable[[duckdb.DuckDBPyConnection], Any]) -> Any:
        """Run a writing job (retention, maintenance) on the writer's cursor, between two batches: the index has
        one writer, and this is the way in for everything else that writes."""
        assert self.writer is not None, "the indexer is not running"
        return await asyncio.get_running_loop().run_in_executor(self.write_pool, self.writer.run, job)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        con = await loop.run_in_executor(self.write_pool, open_database, self.path, self.ix.memory_limit)
        writer = self.writer = IndexWriter(con)
        positions = await loop.run_in_executor(self.write_pool, writer.positions)
        self.committed = {stream: tally.last_seq for stream, tally in positions.items()}
        feeds = feeds_for(self.ctx.js, self.names, self.ix, self.log_once)
        for feed in feeds:
            await feed.open(self.committed.get(feed.stream, 0))
        api = QueryService(self.ctx.nc, self.names, self.ix, con,
                           Reader(self.ctx.settings, self.ix, Presigner(self.ctx.settings, self.ix)), str(self.path))
        await api.start()
        tasks = [asyncio.create_task(self._fetch(feed), name=f"indexer-{feed.kind}") for feed in feeds]
        tasks.append(asyncio.create_task(self._follow_registry(), name="indexer-registry"))
        maintenance = Maintenance(self.ctx.js, self.ctx.settings, self.ix, s3_client(self.ctx.settings.s3), self.write)
        tasks += await maintenance.start()
        await api.add_job("retention", RetentionRequest, maintenance.retention)
        await api.add_job("export", ExportRequest, maintenance.export)
        bridge = EventBridge(self.ctx.nc, self.ctx.js, self.ctx.settings, self.ix) if self.ix.mqtt_bridge else None
        if bridge is not None:
            tasks.append(asyncio.create_task(bridge.run(), name="indexer-mqtt"))
        register_stats("indexer", lambda: {"": {**vars(self.stats), **(vars(bridge.stats) if bridge else {})}},
                       {**METRICS, **BRIDGE_METRICS}, label=None)
        lag = ConsumerLag(self.ctx.js, lambda: [(feed.stream, feed.durable) for feed in feeds])
        tasks.append(asyncio.create_task(lag.run(self.ctx.stop), name="indexer-lag"))
        log.info("indexer up: database %s, batches of up to %d messages every %.2g s", self.path,
                 self.ix.batch_size, self.ix.flush_interval_s)
        try:
            await self._write_loop(writer)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for feed in feeds:
                await feed.close()
            await api.stop()
            await loop.run_in_executor(self.write_pool, con.close)
            self.write_pool.shutdown(wait=True)
            log.info("indexer stopped: %s", self.stats.summary())

    # -- feeding ----------------------------------------------------------------------------------------

    async def _fetch(self, feed: StreamFeed) -> None:
        while True:
            try:
                msgs = await feed.fetch(self.ix.batch_size)  # [] while NATS is away
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the consumer was deleted, the stream recreated, ...: place it again
                self.log_once.warning(f"consumer:{feed.kind}", "fetching from %s failed (%s); recreating consumer %s",
                                      feed.stream, describe_error(exc), feed.durable)
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    await feed.open(self.committed.get(feed.stream, 0))
                continue
            for msg in msgs:
                await self.queue.put((feed, msg))

    async def _follow_registry(self) -> None:
        while True:
            try:
                registry = await CameraRegistry.open(self.ctx.js, self.ctx.settings)
                changes = registry.watch()
                try:
                    async for change in changes:
                        at = change.at if change.at is not None else time.time()
                        config, removed = change.config, change.config is None
                        if removed:  # keep what the camera was: its name alone says little in a search
                            config = await registry.last_config(change.name)
                        await self.queue.put(CameraUpdate(change.name, config, change.revision, at, removed))
                finally:  # stop the watcher now (a cancelled generator is closed only later, after NATS drains)
                    with contextlib.suppress(Exception):
                        await changes.aclose()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # watching again replays the registry; revisions make that harmless
                self.log_once.warning("registry", "camera registry watch failed (%s); watching again",
                                      describe_error(exc))
                await asyncio.sleep(1.0)

    # -- writing ----------------------------------------------------------------------------------------

    async def _write_loop(self, writer: IndexWriter) -> None:
        last_stats, reported = time.monotonic(), ""
        stop = asyncio.ensure_future(self.ctx.stop.wait())
        try:
            while not self.ctx.stop.is_set():
                pending = Pending()
                first = await _next(self.queue, stop, None)
                if first is None:
                    continue
                self._take(pending, first)
                deadline = time.monotonic() + self.ix.flush_interval_s
                while len(pending) < self.ix.batch_size:
                    item = await _next(self.queue, stop, deadline - time.monotonic())
                    if item is None:
                        break
                    self._take(pending, item)
                if await self._commit(writer, pending):
                    await self._settle(pending)
                if time.monotonic() - last_stats >= STATS_EVERY_S:
                    last_stats, summary = time.monotonic(), self.stats.summary()
                    if summary != reported:
                        log.info("indexer totals: %s", summary)
                        reported = summary
        finally:
            stop.cancel()

    def _take(self, pending: Pending, item: tuple[StreamFeed, Msg] | CameraUpdate) -> None:
        if isinstance(item, CameraUpdate):
            pending.cameras.append(item)
            return
        feed, msg = item
        seq = msg.metadata.sequence.stream
        self.stats.messages += 1
        if seq > pending.last_seq.get(feed.stream, 0):
            pending.last_seq[feed.stream], pending.last[feed.stream] = seq, msg
        if seq <= self.committed.get(feed.stream, 0):
            self.stats.replayed += 1  # indexed before a crash or redelivery: the ack is all it needs
            return
        batch = pending.batch
        row: Segment | Gap | tuple[Detection, int | None] | ObjectEvent | Rejected
        if feed.kind == "footage":
            row = footage_row(msg.subject, msg.data, self.names)
        elif feed.kind == "events":
            row = event_row(msg.subject, msg.data, self.names)
        else:
            row = detection_row(msg.subject, msg.data, (msg.headers or {}).get("Nats-Msg-Id"), self.names)
        if isinstance(row, Segment):
            batch.add_segment(row, seq)
        elif isinstance(row, Gap):
            batch.add_gap(row, seq)
        elif isinstance(row, ObjectEvent):
            batch.add_event(row, seq)
        elif isinstance(row, tuple):
            batch.add_detection(row[0], row[1], seq)
        else:
            setattr(self.stats, row.kind, getattr(self.stats, row.kind) + 1)
            pending.rejected.append(msg)
            self.log_once.warning(f"{feed.kind}:{row.kind}", "%s message %d on %s terminated (%s): %s", row.kind,
                                  seq, msg.subject, feed.stream, row.reason)
        batch.taken(feed.stream, seq, isinstance(row, Rejected))

    async def _commit(self, writer: IndexWriter, pending: Pending) -> bool:
        """Commit until it works (or the indexer stops: then nothing is acked and all of it comes again)."""
        if not len(pending.batch) and not pending.cameras and not pending.batch.streams:
            return True
        loop = asyncio.get_running_loop()
        backoff = Backoff(0.2, 10.0)
        while True:
            try:
                result = await loop.run_in_executor(self.write_pool, writer.commit, pending.batch, pending.cameras)
            except Exception as exc:  # disk full, I/O error, a bug: nothing is acked, so nothing is lost
                self.stats.commit_retries += 1
                self.outage.failed("-", exc)
                log.debug("commit failed: %s", describe_error(exc))
                if self.ctx.stop.is_set():
                    return False
                await asyncio.sleep(backoff.next_delay())
                continue
            self.outage.ok()
            break
        for stream, tally in pending.batch.streams.items():
            self.committed[stream] = max(self.committed.get(stream, 0), tally.last_seq)
        stats = self.stats
        stats.commits += 1
        stats.chunks += result.chunks
        stats.gaps += result.gaps
        stats.detections += result.detections
        stats.events += result.events
        stats.linked += result.linked
        stats.cameras += result.cameras
        stats.commit_seconds += result.seconds
        log.debug("committed %d messages: %d chunks, %d gap updates, %d detections, %d links, %d cameras in %.1f ms",
                  len(pending.batch), result.chunks, result.gaps, result.detections, result.linked, result.cameras,
                  result.seconds * 1e3)
        return True

    async def _settle(self, pending: Pending) -> None:
        """Terminate the rejected messages, then ack each stream's last one. A failure is logged once: the next
        ack covers it, and a restart starts after what the database holds."""
        for msg in pending.rejected:
            await settle(msg, Ack.TERM, on_error=self._failed("terminating a rejected message"))
        for stream, msg in pending.last.items():
            await settle(msg, Ack.ACK, timeout=5.0, on_error=self._failed(f"ack on {stream}"))

    def _failed(self, what: str) -> Callable[[BaseException], None]:
        return lambda exc: self.log_once.warning(what, "%s failed (%s)", what, describe_error(exc))


async def _next(queue: asyncio.Queue, stop: asyncio.Future, timeout: float | None):
    """The next queued item, or None when `timeout` passes or the indexer is stopping."""
    if timeout is not None and timeout <= 0:
        return queue.get_nowait() if not queue.empty() else None
    if not queue.empty():
        return queue.get_nowait()
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({getter, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    try:
        return await getter  # it may have got an item just before the cancel: keep it
    except asyncio.CancelledError:
        return None
