"""Where one camera's chunks and gaps go, strictly in order: remux, upload to S3, announce on
`footage.<cam>`, then ack. Nothing is acked before everything before it is stored and announced.

An S3 or NATS outage is waited out (capped exponential backoff, one log line when it starts and one
when it ends, shared by all cameras); the consumer keeps fetching meanwhile, up to max_ack_pending.
"""

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from minio import Minio
from minio.error import S3Error
from minio.helpers import MAX_PART_SIZE, MIN_PART_SIZE
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from spectare.core.backoff import Backoff
from spectare.core.config import Settings
from spectare.core.consumer import Ack, settle
from spectare.core.logs import LogOnce
from spectare.core.metrics import histogram
from spectare.core.retry import Outage, describe_error, retry_until_done
from spectare.schemas import Gap, Segment
from spectare.schemas.keys import chunk_key

from .chunker import Action, AnnounceGap, ChunkPlan, CloseChunk
from .keys import gap_msg_id, segment_msg_id
from .remux import Remuxer, RemuxError
from .settings import SegmenterSettings

log = logging.getLogger(__name__)

CHUNK_LATENCY = histogram("segmenter", "chunk_latency_seconds",
                          "from the end of a chunk's last frame to its Segment event (object already in S3)")


@dataclass(frozen=True)
class AckHandle:
    """A consumed message and its position among the messages this consumer delivered (from 1)."""

    msg: Msg
    ordinal: int


@dataclass(frozen=True)
class Settle:
    """Ack `ack` (no chunk is open: everything up to it is stored or dropped) after terminating the
    undecodable messages in `terminate`."""

    ack: AckHandle | None
    terminate: tuple[AckHandle, ...] = ()


Item = Action | Settle


@dataclass
class CameraStats:
    chunks: int = 0
    bytes: int = 0
    frames: int = 0
    gaps: int = 0
    garbage: int = 0
    terminated: int = 0
    redelivered: int = 0
    upload_retries: int = 0
    publish_retries: int = 0
    duplicate_events: int = 0
    remux_errors: int = 0
    ack_errors: int = 0
    remux_seconds: float = 0.0


@dataclass
class Shared:
    """What all cameras of one segmenter share."""

    settings: Settings
    seg: SegmenterSettings
    js: JetStreamContext
    s3: Minio
    nc: NATS
    s3_outage: Outage = field(default_factory=lambda: Outage("S3 uploads"))
    nats_outage: Outage = field(default_factory=lambda: Outage("footage announcements on NATS"))


class ChunkSink:
    def __init__(self, camera: str, shared: Shared, stats: CameraStats, remuxer: Remuxer) -> None:
        self.camera = camera
        self.shared = shared
        self.stats = stats
        self.remuxer = remuxer
        self.subject = shared.settings.names.footage(camera)
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        self.acked_ordinal = 0  # every message up to this one is acked
        self._busy = False
        self.log_once = LogOnce(log)

    def put(self, item: Item) -> None:
        self.queue.put_nowait(item)

    @property
    def idle(self) -> bool:
        return self.queue.empty() and not self._busy

    async def run(self) -> None:
        while True:
            item = await self.queue.get()
            self._busy = True
            try:
                if isinstance(item, CloseChunk):
                    await self._store(item.plan)
                elif isinstance(item, AnnounceGap):
                    await self._announce_gap(item.gap)
                else:
                    for handle in item.terminate:
                        await self._settle(handle, terminate=True)
                    if item.ack is not None and item.ack.ordinal > self.acked_ordinal:
                        await self._settle(item.ack)
            finally:
                self._busy = False

    # -- one chunk ------------------------------------------------------------------------------

    async def _store(self, plan: ChunkPlan) -> None:
        began = time.perf_counter()
        try:
            remuxed = await asyncio.to_thread(self.remuxer.remux, plan)
        except RemuxError as exc:
            self.stats.remux_errors += 1
            self.log_once.warning("remux", "camera %s: chunk %s:%d..%d cannot be stored, announced as a gap: %s",
                                  self.camera, plan.session, plan.first_seq, plan.last_seq, exc)
            await self._announce_gap(Gap.create(camera=self.camera, start=plan.start, end=plan.end,
                                                reason=f"chunk could not be remuxed: {exc}"[:200],
                                                session=plan.session))
            await self._settle(plan.ack)
            return
        remuxed_at = time.perf_counter()
        self.stats.remux_seconds += remuxed_at - began
        key = chunk_key(self.camera, plan.start, plan.session, plan.first_seq)
        await self._upload(key, remuxed.data)
        video = plan.info.video
        segment = Segment.create(
            camera=self.camera, bucket=self.shared.settings.s3.bucket, key=key, session=plan.session,
            first_seq=plan.first_seq, last_seq=plan.last_seq, start=plan.start, end=plan.end,
            frames=remuxed.frames, bytes=len(remuxed.data), codec=video.codec, width=video.width, height=video.height,
        )
        await self._publish(segment.encode(), segment_msg_id(self.camera, plan.session, plan.first_seq))
        CHUNK_LATENCY.observe(max(0.0, time.time() - plan.end))
        await self._settle(plan.ack)
        self.stats.chunks += 1
        self.stats.bytes += len(remuxed.data)
        self.stats.frames += remuxed.frames
        log.debug("camera %s: stored %s (%d frames, %.2fs, %d bytes, seq %d..%d; remux %.1f ms, total %.0f ms)",
                  self.camera, key, remuxed.frames, plan.end - plan.start, len(remuxed.data), plan.first_seq,
                  plan.last_seq, (remuxed_at - began) * 1e3, (time.perf_counter() - began) * 1e3)

    async def _announce_gap(self, gap: Gap) -> None:
        await self._publish(gap.encode(), gap_msg_id(gap))
        self.stats.gaps += 1
        log.info("camera %s: gap from %s to %s (%s)", self.camera, _iso(gap.start),
                 "now" if gap.end is None else _iso(gap.end), gap.reason)

    # -- I/O with retries -----------------------------------------------------------------------

    async def _upload(self, key: str, data: bytes) -> None:
        bucket = self.shared.settings.s3.bucket
        s3 = self.shared.s3
        # One PUT: the SDK would split anything over 5 MiB (a 10 s chunk above ~4 Mbit/s) into a multipart
        # upload, four requests instead of one.
        part_size = min(max(len(data), MIN_PART_SIZE), MAX_PART_SIZE)

        def put() -> None:
            try:
                s3.put_object(bucket, key, io.BytesIO(data), len(data), content_type="video/mp4", part_size=part_size)
            except S3Error as exc:
                if exc.code != "NoSuchBucket":
                    raise
                with contextlib.suppress(S3Error):  # a concurrent creator wins: fine
                    s3.make_bucket(bucket)
                s3.put_object(bucket, key, io.BytesIO(data), len(data), content_type="video/mp4", part_size=part_size)

        await self._retry(lambda: self._in_thread(put), self.shared.s3_outage, "upload_retries")

    async def _in_thread(self, fn: Callable[[], Any]) -> Any:
        future = asyncio.ensure_future(asyncio.to_thread(fn))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # A thread cannot be stopped: let its request end before this camera counts as stopped, so that
            # a late write never lands after a successor's write of the same key.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(future, self.shared.seg.upload_timeout_s + 5)
            raise

    async def _publish(self, payload: bytes, msg_id: str) -> None:
        js, timeout = self.shared.js, self.shared.seg.publish_timeout_s

        async def publish() -> None:
            ack = await js.publish(self.subject, payload, timeout=timeout, headers={"Nats-Msg-Id": msg_id})
            if ack.duplicate:
                self.stats.duplicate_events += 1

        await self._retry(publish, self.shared.nats_outage, "publish_retries")

    async def _retry(self, attempt: Callable[[], Awaitable[Any]], outage: Outage, counter: str) -> None:
        def count() -> None:
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)

        await retry_until_done(attempt, outage, self.camera, self._backoff(), count)

    async def _settle(self, handle: AckHandle | None, terminate: bool = False) -> None:
        """Ack (or terminate) one message and, AckPolicy.ALL, all before it; confirmed by the server so a
        kill right after cannot lose it. A failed ack is not fatal: the next one covers it, and after a
        restart the chunker skips what the footage stream says is stored."""
        if handle is None or handle.ordinal <= self.acked_ordinal:
            return

        def failed(exc: BaseException) -> None:
            self.stats.ack_errors += 1
            self.log_once.warning("ack", "camera %s: ack failed (%s); the next ack covers it", self.camera,
                                  describe_error(exc))

        if await settle(handle.msg, Ack.TERM if terminate else Ack.ACK, timeout=self.shared.seg.publish_timeout_s,
                        attempts=5, backoff=self._backoff(), on_error=failed):
            if terminate:
                self.stats.terminated += 1
            self.acked_ordinal = max(self.acked_ordinal, handle.ordinal)

    def _backoff(self) -> Backoff:
        return Backoff(self.shared.seg.upload_backoff_min_s, self.shared.seg.upload_backoff_max_s)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
