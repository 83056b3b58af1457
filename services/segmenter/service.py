"""The segmenter service: per camera (under a `segmenter` lease), consume the camera's packets, cut them
into chunks, and hand chunks and gaps to the camera's in-order sink (remux, upload, announce, ack).

    python -m spectare.segmenter

Per camera: one task reads the durable consumer (a long-lived pull request delivers messages as they
are stored; the task takes what arrived every fetch_interval_s, so one wake-up carries several frames)
and feeds the chunker; one task (the sink) stores and acks what the chunker closes, strictly in order.
Reading goes on while an upload waits for S3, up to max_ack_pending un-acked messages (then JetStream
holds delivery back, and waiting is not mistaken for a stalled camera).
"""

import asyncio
import contextlib
import logging
import math
import time

from nats.aio.msg import Msg

from spectare.core.consumer import NATS_ERRORS, TRANSIENT_ERRORS, consumer_state, pause_after
from spectare.core.errors import SchemaError, SpectareError
from spectare.core.leases import Lease
from spectare.core.logs import LogOnce
from spectare.core.metrics import ConsumerLag, register_stats
from spectare.core.service import ServiceContext
from spectare.core.store import ensure_bucket, s3_client
from spectare.core.worker import CameraWorker
from spectare.schemas import CameraConfig, Packet, PacketGroup, StreamInfo, decode_one_of

from .chunker import Action, Chunker, CloseChunk
from .consumer import InfoLookup, Puller, consumer_name, open_consumer, read_footage_end
from .remux import Remuxer
from .settings import SegmenterSettings
from .sink import AckHandle, CameraStats, ChunkSink, Settle, Shared

log = logging.getLogger(__name__)

METRICS = {
    "chunks": "MP4 chunks stored in S3 and announced",
    "bytes": "bytes of MP4 chunks stored",
    "frames": "video frames in stored chunks",
    "gaps": "gaps announced (camera away, reconnects, stalls)",
    "garbage": "undecodable messages skipped",
    "upload_retries": "failed S3 uploads retried",
    "publish_retries": "failed footage announcements retried",
    "remux_errors": "chunks that could not be remuxed (announced as gaps)",
    "remux_seconds": "seconds spent remuxing",
}


class Segmenter:
    def __init__(self, ctx: ServiceContext, seg: SegmenterSettings) -> None:
        self.ctx = ctx
        self.seg = seg
        s3 = s3_client(ctx.settings.s3, timeout_s=seg.upload_timeout_s, retries=0)
        self.shared = Shared(ctx.settings, seg, ctx.js, s3, ctx.nc)
        self.stats: dict[str, CameraStats] = {}
        register_stats("segmenter", lambda: {camera: vars(stats) for camera, stats in list(self.stats.items())},
                       METRICS)

    def totals(self) -> CameraStats:
        total = CameraStats()
        for stats in self.stats.values():
            for name, value in vars(stats).items():
                setattr(total, name, getattr(total, name) + value)
        return total

    async def run(self) -> None:
        try:
            await asyncio.to_thread(ensure_bucket, self.ctx.settings.s3, self.shared.s3)
        except SpectareError as exc:  # S3 down at start: uploads wait for it, per chunk
            log.warning("%s; chunks will wait for it", exc)
        media = self.ctx.settings.names.media_stream
        lag = ConsumerLag(self.ctx.js, lambda: [(media, consumer_name(camera)) for camera in list(self.stats)])
        lag_task = asyncio.create_task(lag.run(self.ctx.stop))
        worker = CameraWorker(self.ctx.js, self.ctx.settings, role="segmenter", run_camera=self.run_camera,
                              max_cameras=self.seg.max_cameras, restart_on=frozenset({"segment_seconds"}))
        try:
            await worker.run(self.ctx.stop)
        finally:
            lag_task.cancel()
        t = self.totals()
        log.info("segmenter stopped: %d chunks, %d bytes, %d gaps, %d garbage messages, %d upload retries",
                 t.chunks, t.bytes, t.gaps, t.garbage, t.upload_retries)

    async def run_camera(self, config: CameraConfig, lease: Lease) -> None:
        stats = self.stats.setdefault(config.name, CameraStats())
        await CameraPipeline(self.shared, config, stats).run()


class CameraPipeline:
    def __init__(self, shared: Shared, config: CameraConfig, stats: CameraStats) -> None:
        self.shared = shared
        self.seg = shared.seg
        self.camera = config.name
        self.config = config
        self.stats = stats
        names = shared.settings.names
        self.info_subject = names.info(self.camera)
        self.packets_subject = names.packets(self.camera)
        self.lookup = InfoLookup(shared.js, shared.settings, self.camera)
        self.remuxer = Remuxer()
        self.sink = ChunkSink(self.camera, shared, stats, self.remuxer)
        self.chunker: Chunker | None = None
        self.ordinal = 0  # messages consumed so far (redeliveries not counted)
        self.max_stream_seq = 0
        self.requested_ordinal = 0  # highest ack handed to the sink
        self.garbage: list[AckHandle] = []  # undecodable messages not yet covered by an ack
        self.log_once = LogOnce(log)
        self.bus_trouble_at = -math.inf  # when NATS last refused or failed a pull or a question (monotonic)

    async def run(self) -> None:
        js, settings = self.shared.js, self.shared.settings
        tail, open_gap = await read_footage_end(js, settings, self.camera)
        await open_consumer(js, settings, self.seg, self.camera, tail)
        puller = Puller(self.shared.nc, js, settings.names.media_stream, consumer_name(self.camera),
                        self.seg.fetch_batch, self.seg.fetch_timeout_s)
        await puller.start()
        self.chunker = Chunker(self.camera, self.config.segment_seconds, self.seg.stall_timeout_s, time.monotonic(),
                               max_packets=self.seg.max_chunk_packets, tail=tail, open_gap=open_gap)
        log.info("camera %s: segmenting into %ds chunks", self.camera, self.config.segment_seconds)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.sink.run(), name=f"segmenter-sink:{self.camera}")
                tasks.create_task(self._consume(puller), name=f"segmenter-fetch:{self.camera}")
        except ExceptionGroup as group:  # one of the two failed (the other was cancelled): pass its error on
            error = group.exceptions[0]
            if not isinstance(error, SpectareError):
                log.error("camera %s: segmenting failed", self.camera, exc_info=error)
            raise error from None
        finally:
            with contextlib.suppress(Exception):
                await puller.close()
            self.remuxer.close()
            s = self.stats
            log.info("camera %s: stopped (%d chunks, %d bytes, %d gaps, %d garbage, %d upload retries, "
                     "remux %.1f ms/chunk)", self.camera, s.chunks, s.bytes, s.gaps, s.garbage, s.upload_retries,
                     1e3 * s.remux_seconds / max(s.chunks, 1))

    async def _consume(self, puller: Puller) -> None:
        assert self.chunker is not None
        interval = self.seg.fetch_interval_s
        loop = asyncio.get_running_loop()
        while True:
            try:
                await puller.pull()  # a pull request open at the server (a new one if the last ended)
            except TRANSIENT_ERRORS as exc:
                self.bus_trouble_at = time.monotonic()
                await pause_after(exc, self.log_once, "fetch", f"camera {self.camera}: cannot fetch")
                continue
            # Let a few messages gather rather than wake up for each one, and wake up on a clock shared by all
            # cameras (a multiple of the interval): waking the process costs more CPU than the packets themselves
            # (~0.2 ms here), and one wake-up then serves every camera. A request that fills up is taken at once.
            now = loop.time()
            if interval > 0:
                await puller.wait((math.floor(now / interval) + 1) * interval)
            else:
                await puller.wait(now + min(self.seg.fetch_timeout_s, self.seg.stall_timeout_s / 4), for_message=True)
            for msg in puller.take():
                for action in await self._feed(msg):
                    self._hand_over(action)
            now = time.monotonic()
            if self.chunker.stall_due(now) and await self._delivery_held_up():
                self.chunker.keepalive(now)
            self._after_batch(now)
            if puller.refused is not None:
                self.bus_trouble_at = time.monotonic()
                # e.g. 409 Leadership Change; a deleted consumer (409 Consumer Deleted, 503 no responders) ends this
                # camera's run and the worker restarts it (which recreates the consumer from what is stored).
                if not await self._consumer_exists():
                    raise SpectareError(f"camera {self.camera}: consumer deleted ({puller.refused})") from None
                self.log_once.warning("refused", "camera %s: pull request refused (%s); retrying", self.camera,
                                      puller.refused)
                await asyncio.sleep(min(1.0, self.seg.fetch_timeout_s))

    async def _delivery_held_up(self) -> bool:
        """Whether packets are late rather than not sent: the consumer has messages waiting, or JetStream cannot say
        (NATS away, or the stream or consumer without a leader while a cluster elects one, when pulls just go
        unanswered), or could not lately: ingest resends what the bus did not store then, with back-off, after the
        bus is back. Asked only when a stall is due: a camera has not stalled because the bus held its packets."""
        if time.monotonic() - self.bus_trouble_at < 2 * self.seg.stall_timeout_s:
            return True
        names = self.shared.settings.names
        try:
            info = await consumer_state(self.shared.js, names.media_stream, consumer_name(self.camera), timeout=2.0)
        except NATS_ERRORS:
            self.bus_trouble_at = time.monotonic()
            return True
        return info is not None and (info.num_pending or 0) > 0

    async def _consumer_exists(self) -> bool:
        names = self.shared.settings.names
        try:
            return await consumer_state(self.shared.js, names.media_stream, consumer_name(self.camera)) is not None
        except NATS_ERRORS:
            return True  # cannot tell now: assume it is there

    async def _feed(self, msg: Msg) -> list[Action]:
        chunker = self.chunker
        assert chunker is not None
        stream_seq = msg.metadata.sequence.stream
        if stream_seq <= self.max_stream_seq:
            self.stats.redelivered += 1  # an older message again (ack_wait passed): the ack of a later one covers it
            return []
        self.max_stream_seq = stream_seq
        self.ordinal += 1
        handle = AckHandle(msg, self.ordinal)
        if msg.subject == self.info_subject:
            try:
                info = StreamInfo.decode(msg.data)
                if info.camera != self.camera:
                    raise SchemaError(f"stream info of camera {info.camera!r}")
            except SchemaError as exc:
                return self._garbage("info", handle, exc)
            self.lookup.remember(info)
            return chunker.on_info(info, handle)
        if msg.subject == self.packets_subject:
            try:
                message = decode_one_of(msg.data, PacketGroup, Packet)
                if message.camera != self.camera:
                    raise SchemaError(f"packets of camera {message.camera!r}")
            except SchemaError as exc:
                return self._garbage("packets", handle, exc)
            actions: list[Action] = []
            if message.session != chunker.session:
                found = await self.lookup.find(message.session, stream_seq)
                if found is not None:
                    actions += chunker.on_info(found)
                else:
                    self.log_once.warning(f"noinfo:{message.session}", "camera %s: no stream info for session %s; "
                                          "its packets cannot be recorded", self.camera, message.session)
            packets = message.packets if isinstance(message, PacketGroup) else (message,)
            # Only the group's last packet carries its ack: a chunk cut inside a group then never acks
            # the packets after the cut (they are replayed, and skipped as stored, after a crash).
            for packet in packets[:-1]:
                actions += chunker.on_packet(packet, None)
            return actions + chunker.on_packet(packets[-1], handle)
        return self._garbage("subject", handle, SchemaError(f"unexpected subject {msg.subject}"))

    def _garbage(self, kind: str, handle: AckHandle, exc: Exception) -> list[Action]:
        """An undecodable message: counted, logged once per kind, and settled in order, never ahead of footage
        before it: under AckPolicy.ALL a `term` acks every earlier message too, so it is terminated only once
        no chunk is open (see Settle); one inside a chunk is acked with that chunk."""
        self.stats.garbage += 1
        self.log_once.warning(f"garbage:{kind}", "camera %s: undecodable message on %s skipped: %s", self.camera,
                              handle.msg.subject, exc)
        self.garbage.append(handle)
        assert self.chunker is not None
        self.chunker.on_skipped(handle)
        return []

    def _hand_over(self, action: Action) -> None:
        if isinstance(action, CloseChunk):
            handle = action.plan.ack
            if handle is not None:
                self.requested_ordinal = max(self.requested_ordinal, handle.ordinal)
                self.garbage = [g for g in self.garbage if g.ordinal > handle.ordinal]
        self.sink.put(action)

    def _after_batch(self, now: float) -> None:
        chunker = self.chunker
        assert chunker is not None
        unacked = self.ordinal - self.sink.acked_ordinal
        margin = max(self.seg.fetch_batch, self.seg.max_ack_pending // 20)
        if unacked >= self.seg.max_ack_pending - margin:
            # JetStream holds delivery back: our own doing (uploads waiting), not a stalled camera ...
            chunker.keepalive(now)
            if self.sink.idle and chunker.open_packets:
                # ... unless the open chunk alone fills the window (no keyframe for that long).
                for action in chunker.cut(f"more than {self.seg.max_ack_pending} messages without a keyframe"):
                    self._hand_over(action)
        else:
            for action in chunker.tick(now):
                self._hand_over(action)
        # No chunk open: every consumed message is stored, queued for storing, or dropped, so the latest
        # one can be acked once the sink is through its queue; undecodable ones are terminated then.
        last = chunker.last_ack
        if chunker.open_packets == 0 and last is not None and last.ordinal > self.requested_ordinal:
            self.requested_ordinal = last.ordinal
            self.sink.put(Settle(last, tuple(self.garbage)))
            self.garbage = []
