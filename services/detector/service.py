"""The detector service: keyframes in, detections and snapshots out. This module is its loop and wiring;
what happens to a batch of keyframes is `pipeline.py`.

All replicas share one durable pull consumer (`detector`, AckPolicy.EXPLICIT) on the KEYFRAMES stream, so
JetStream hands each keyframe to exactly one of them and adding replicas adds throughput. Any replica creates
it or updates it to its settings at start, and none deletes it (see `spectare.core.consumer.open_durable`).

The loop fetches up to `batch_size` keyframes and hands them to the pipeline as one batch; up to
`concurrent_batches` batches overlap (one decodes and draws while another is in the model). Every fetched
message is in flight (`spectare.core.consumer.InFlight`) until the pipeline settles it; while the pipeline
waits out an S3 or NATS outage, every message in flight is kept alive with in-progress acks, so JetStream does
not hand it to another replica. A batch that fails (a bug) is logged, and its keyframes are redelivered after
ack_wait. Alongside: the camera registry is followed (so a keyframe's camera is looked up in memory), consumer
lag is sampled, and totals are logged every minute when they changed.
"""

import asyncio
import contextlib
import logging
import time

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from spectare.core.consumer import InFlight, PullConsumer
from spectare.core.errors import CameraNotFound, SchemaError, SpectareError
from spectare.core.logs import LogOnce
from spectare.core.metrics import ConsumerLag, register_stats
from spectare.core.registry import CameraRegistry
from spectare.core.service import ServiceContext, run_section_service
from spectare.core.store import ensure_bucket, s3_client
from spectare.schemas import CameraConfig, Names

from .models import ObjectDetector, load_detector
from .motion import MotionStore
from .pipeline import METRICS, DetectorStats, Pipeline
from .policy import tracking_rules
from .settings import DetectorSettings
from .tracking import TrackStore

log = logging.getLogger(__name__)

CONSUMER = "detector"
STATS_EVERY_S = 60.0


class Detector:
    def __init__(self, ctx: ServiceContext, det: DetectorSettings, model: ObjectDetector) -> None:
        self.ctx = ctx
        self.det = det
        self.model = model
        self.stats = DetectorStats()
        self.log_once = LogOnce(log)
        self.cameras: dict[str, CameraConfig] = {}
        self.s3 = s3_client(ctx.settings.s3, timeout_s=det.upload_timeout_s)
        self.registry: CameraRegistry | None = None
        self.in_flight = InFlight(det.publish_timeout_s, self._settle_failed)  # delivered, not settled: kept alive

    async def run(self) -> None:
        js = self.ctx.js
        self.registry = await CameraRegistry.open(js, self.ctx.settings)
        motion = await MotionStore.open(js, self.ctx.settings)
        tracks = await TrackStore.open(js, self.ctx.settings)
        pipeline = Pipeline(self.ctx.settings, self.det, self.model, js, self.s3, motion, tracks, self._camera,
                            self.in_flight, self.stats)
        self.cameras = {c.name: c for c in await self.registry.list()}
        try:
            await asyncio.to_thread(ensure_bucket, self.ctx.settings.s3, self.s3)
        except SpectareError as exc:  # S3 down at start: snapshots wait for it
            log.warning("%s; snapshots will wait for it", exc)
        consumer = await open_consumer(js, self.ctx.settings.names, self.det, self.log_once)
        log.info("detector up: model %s on %s, batches of up to %d keyframes", self.model.name, self.model.device,
                 self.det.batch_size)
        watcher = asyncio.create_task(self._follow_registry(), name="detector-registry")
        register_stats("detector", lambda: {"": vars(self.stats)}, METRICS, label=None)
        stream = self.ctx.settings.names.keyframes_stream
        lag = asyncio.create_task(ConsumerLag(js, lambda: [(stream, CONSUMER)]).run(self.ctx.stop))
        ends = asyncio.create_task(self._end_timer(pipeline), name="detector-end-timer")
        # Batches overlap (one decodes and draws while another is in the model), up to concurrent_batches.
        slots = asyncio.Semaphore(self.det.concurrent_batches)
        batches: set[asyncio.Task] = set()
        last_stats, reported_stats = time.monotonic(), ""
        try:
            while not self.ctx.stop.is_set():
                await slots.acquire()
                msgs = await consumer.fetch(self.det.batch_size)  # [] when none came, or NATS is away
                if msgs:
                    self.in_flight.add(msgs)
                    batch = asyncio.create_task(self._batch(pipeline, msgs, slots))
                    batches.add(batch)
                    batch.add_done_callback(batches.discard)
                else:
                    slots.release()
                if time.monotonic() - last_stats >= STATS_EVERY_S:
                    last_stats, summary = time.monotonic(), self.stats.summary()
                    if summary != reported_stats:
                        log.info("detector totals: %s", summary)
                        reported_stats = summary
        finally:
            if batches:
                await asyncio.wait(batches, timeout=self.det.ack_wait_s)
            watcher.cancel()
            lag.cancel()
            ends.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            # Messages a cancelled fetch left in the subscription's queue would hold up the connection's drain.
            await consumer.close()
            log.info("detector stopped: %s", self.stats.summary())

    async def _batch(self, pipeline: Pipeline, msgs: list[Msg], slots: asyncio.Semaphore) -> None:
        try:
            await pipeline.handle(msgs)
        except Exception:  # a bug: the batch's keyframes are redelivered after ack_wait, the service goes on
            self.in_flight.forget(msgs)  # not kept alive by other batches' retries (nor kept in memory)
            log.exception("batch of %d keyframes failed; they will be redelivered", len(msgs))
        finally:
            slots.release()

    async def _end_timer(self, pipeline: Pipeline) -> None:
        """Objects of cameras that send no keyframes (stopped, unreachable, detection switched off) still end."""
        while not self.ctx.stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.ctx.stop.wait(), self.det.end_check_s)
            try:
                await pipeline.tracking.expire_all(
                    time.time(), lambda camera: tracking_rules(self.cameras.get(camera), self.det))
            except Exception as exc:  # NATS away, or a bug: said once, tried again next round
                self.log_once.warning("end-timer", "end timer failed (%s: %s); trying again", type(exc).__name__, exc)

    async def _follow_registry(self) -> None:
        assert self.registry is not None
        async for change in self.registry.watch():
            if change.config is None:
                self.cameras.pop(change.name, None)
            else:
                self.cameras[change.name] = change.config

    async def _camera(self, name: str) -> CameraConfig | None:
        config = self.cameras.get(name)
        if config is None and self.registry is not None:  # registered after the last change we saw
            with contextlib.suppress(CameraNotFound, SchemaError):
                config = self.cameras[name] = await self.registry.get(name)
        return config

    def _settle_failed(self, exc: BaseException) -> None:  # redelivered later; message ids prevent duplicates
        self.log_once.warning("ack", "ack failed (%s); the keyframe will be redelivered", type(exc).__name__)


async def open_consumer(js: JetStreamContext, names: Names, det: DetectorSettings,
                        log_once: LogOnce | None = None) -> PullConsumer:
    """The shared durable consumer, created or updated to the current settings by any replica (never deleted:
    the other replicas are reading it)."""
    config = ConsumerConfig(
        durable_name=CONSUMER,
        description="object detection on keyframes, shared by all detector replicas",
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=det.ack_wait_s,
        max_ack_pending=det.max_ack_pending,
        max_deliver=5,  # a keyframe that crashes replicas is given up after a few tries
        filter_subject=names.keyframes("*"),
    )
    consumer = PullConsumer(js, names.keyframes_stream, config, log_once)
    await consumer.open(recreate=False)
    return consumer


async def serve(ctx: ServiceContext, det: DetectorSettings) -> None:
    model = await asyncio.to_thread(load_detector, det)
    await Detector(ctx, det, model).run()


def main() -> None:
    run_section_service("detector", DetectorSettings.load, serve)
