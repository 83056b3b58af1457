"""The detector service: keyframes in, detections and snapshots out.

All replicas share one durable pull consumer (`detector`) on the KEYFRAMES stream, so JetStream hands
each keyframe to exactly one of them and adding replicas adds throughput. Per batch of keyframes
(several cameras' keyframes go through the model together when several are waiting):

  1. decode the message; garbage is terminated, counted and logged once;
  2. skip cameras that are unregistered or have detection off (acked at once: no decoding);
  3. decode the picture (PyAV, keyframes only) and run the motion gate, whose per-camera state lives
     in the `motion` KV bucket shared by every replica (see motion.py);
  4. run the model on the keyframes that passed;
  5. per keyframe with reported findings: a JPEG snapshot with the boxes drawn goes to S3, then one
     Detection per finding (its `index` i in score order) on `detections.<cam>.<label>` with `Nats-Msg-Id`
     `<cam>:<session>:<seq>:<i>`;
  6. ack. A keyframe is acked only after its snapshot is stored and its detections are published, so a
     crash re-runs it elsewhere, and the message ids keep the re-run from publishing anything twice.

S3 or NATS outages are ridden out with backoff while the batch stays un-acked (kept alive with
in-progress acks).
"""

import asyncio
import contextlib
import io
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field, fields

import numpy as np
from minio import Minio
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from spectare.core.backoff import Backoff
from spectare.core.consumer import Ack, InFlight, PullConsumer
from spectare.core.errors import CameraNotFound, SchemaError, SpectareError
from spectare.core.logs import LogOnce
from spectare.core.metrics import ConsumerLag, histogram, register_stats
from spectare.core.registry import CameraRegistry
from spectare.core.retry import Outage, retry_until_done
from spectare.core.service import ServiceContext, run_section_service
from spectare.core.store import ensure_bucket, s3_client
from spectare.media.frames import UndecodableKeyframe, decode_keyframe, thumbnail, to_bgr
from spectare.schemas import CameraConfig, Detection, Keyframe, MotionState, Names, camera_of
from spectare.schemas.keys import snapshot_key

from .gate import THUMB_WIDTH, GateResult, judge, newer
from .models import Found, ObjectDetector, load_detector
from .motion import MotionStore
from .policy import CameraPolicy, camera_policy, detection_msg_id, reported
from .settings import DetectorSettings
from .snapshot import render

log = logging.getLogger(__name__)

METRICS = {
    "keyframes": "keyframes taken from the stream",
    "unregistered": "keyframes of cameras not in the registry (acked, not looked at)",
    "detect_off": "keyframes of cameras with detection off (acked, not decoded)",
    "still": "keyframes the motion gate skipped",
    "inferred": "keyframes run through the model",
    "detections": "detections published",
    "duplicates": "detections JetStream already had (a re-run after a crash)",
    "snapshots": "snapshot JPEGs stored",
    "garbage": "undecodable messages terminated",
    "undecodable": "keyframes that did not decode (terminated)",
    "upload_retries": "failed snapshot uploads retried",
    "publish_retries": "failed detection publishes retried",
    "batches": "batches of keyframes handled",
    "model_seconds": "seconds spent in the model",
}
LATENCY = histogram("detector", "latency_seconds",
                    "from a keyframe's wall time to its detections published (or it found nothing)")
CONSUMER = "detector"
STATS_EVERY_S = 60.0


@dataclass
class DetectorStats:
    keyframes: int = 0
    unregistered: int = 0
    detect_off: int = 0
    still: int = 0  # skipped by the motion gate
    inferred: int = 0  # keyframes run through the model
    detections: int = 0
    duplicates: int = 0  # detections JetStream already had (a re-run after a crash)
    snapshots: int = 0
    garbage: int = 0
    undecodable: int = 0
    upload_retries: int = 0
    publish_retries: int = 0
    batches: int = 0
    model_seconds: float = 0.0

    def summary(self) -> str:
        values = ((f.name, getattr(self, f.name)) for f in fields(self))
        return ", ".join(f"{name} {value:.1f}" if isinstance(value, float) else f"{name} {value}"
                         for name, value in values)


@dataclass
class Job:
    """One keyframe on its way through a batch."""

    msg: Msg
    keyframe: Keyframe
    policy: CameraPolicy
    image: np.ndarray | None = None
    thumb: np.ndarray | None = None
    gate: GateResult | None = None
    found: list[Found] = field(default_factory=list)


class Detector:
    def __init__(self, ctx: ServiceContext, det: DetectorSettings, model: ObjectDetector) -> None:
        self.ctx = ctx
        self.det = det
        self.model = model
        self.names = ctx.settings.names
        self.stats = DetectorStats()
        self.log_once = LogOnce(log)
        self.cameras: dict[str, CameraConfig] = {}
        self.s3: Minio = s3_client(ctx.settings.s3, timeout_s=det.upload_timeout_s)
        self.s3_outage = Outage("snapshot uploads to S3")
        self.nats_outage = Outage("detection publishing on NATS")
        self.registry: CameraRegistry | None = None
        self.motion: MotionStore | None = None
        self.model_lock = asyncio.Lock()
        self.in_flight = InFlight(det.publish_timeout_s, self._settle_failed)  # delivered, not settled: kept alive

    async def run(self) -> None:
        js = self.ctx.js
        self.registry = await CameraRegistry.open(js, self.ctx.settings)
        self.motion = await MotionStore.open(js, self.ctx.settings)
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
        # Batches overlap (one decodes and draws while another is in the model), up to concurrent_batches.
        slots = asyncio.Semaphore(self.det.concurrent_batches)
        batches: set[asyncio.Task] = set()
        last_stats, reported_stats = time.monotonic(), ""
        try:
            while not self.ctx.stop.is_set():
                await slots.acquire()
                msgs = await consumer.fetch(self.det.batch_size)  # [] when none came, or NATS is away
                if msgs:
                    batch = asyncio.create_task(self._batch(msgs, slots))
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
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            # Messages a cancelled fetch left in the subscription's queue would hold up the connection's drain.
            await consumer.close()
            log.info("detector stopped: %s", self.stats.summary())

    async def _batch(self, msgs: list[Msg], slots: asyncio.Semaphore) -> None:
        try:
            await self.handle(msgs)
        except Exception:  # a bug: the batch's keyframes are redelivered after ack_wait, the service goes on
            log.exception("batch of %d keyframes failed; they will be redelivered", len(msgs))
        finally:
            slots.release()

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

    # -- one batch ----------------------------------------------------------------------------------

    async def handle(self, msgs: list[Msg]) -> None:
        self.stats.batches += 1
        self.in_flight.add(msgs)
        jobs: list[Job] = []
        for msg in msgs:
            self.stats.keyframes += 1
            try:
                keyframe = Keyframe.decode(msg.data)
            except SchemaError as exc:
                self.stats.garbage += 1
                self.log_once.warning("garbage", "undecodable message on %s terminated: %s", msg.subject, exc)
                await self._settle(msg, terminate=True)
                continue
            config = await self._camera(keyframe.camera)
            if config is None or not config.detect:
                if config is None:
                    self.stats.unregistered += 1
                else:
                    self.stats.detect_off += 1
                await self._settle(msg)
                continue
            jobs.append(Job(msg, keyframe, camera_policy(config, self.det)))
        if not jobs:
            return
        await asyncio.to_thread(self._decode_pictures, jobs)
        for job in [j for j in jobs if j.image is None]:
            await self._settle(job.msg, terminate=True)
        jobs = await self._gate([j for j in jobs if j.image is not None])
        if not jobs:
            return
        min_score = min(job.policy.min_score for job in jobs)
        async with self.model_lock:  # models are not thread-safe: one batch at a time in the model
            began = time.perf_counter()
            results = await asyncio.to_thread(self.model.detect, [job.image for job in jobs], min_score)
            self.stats.model_seconds += time.perf_counter() - began
        self.stats.inferred += len(jobs)
        for job, found in zip(jobs, results, strict=True):
            job.found = reported(found, job.policy)
        await asyncio.gather(*(self._report(job) for job in jobs))

    def _decode_pictures(self, jobs: list[Job]) -> None:
        for job in jobs:
            try:
                frame = decode_keyframe(job.keyframe)
            except UndecodableKeyframe as exc:
                self.stats.undecodable += 1
                self.log_once.warning(f"undecodable:{job.keyframe.camera}", "camera %s: keyframe %s:%d terminated: %s",
                                      job.keyframe.camera, job.keyframe.session, job.keyframe.seq, exc)
                continue
            job.image = to_bgr(frame)
            if job.policy.motion_gate:
                job.thumb = thumbnail(frame, THUMB_WIDTH)

    async def _gate(self, jobs: list[Job]) -> list[Job]:
        """The jobs that pass the motion gate; the still ones are acked. Each camera's keyframes are judged
        in time order against the picture before them, and the last one's picture is stored for the next."""
        assert self.motion is not None
        by_camera: dict[str, list[Job]] = defaultdict(list)
        for job in jobs:
            by_camera[job.keyframe.camera].append(job)
        passing: list[Job] = []
        for camera, camera_jobs in by_camera.items():
            camera_jobs.sort(key=lambda j: (j.keyframe.wall_time, j.keyframe.seq))
            gated = [j for j in camera_jobs if j.thumb is not None]
            stored, revision = await self.motion.load(camera) if gated else (None, None)
            previous = stored
            for job in camera_jobs:
                job.gate = judge(previous, job.thumb, job.policy.motion_threshold)
                if job.thumb is not None:
                    kf = job.keyframe
                    current = MotionState(camera=camera, session=kf.session, seq=kf.seq, wall_time=kf.wall_time,
                                          width=job.thumb.shape[1], height=job.thumb.shape[0],
                                          pixels=job.thumb.tobytes())
                    if newer(current, previous):
                        previous = current
                if job.gate.verdict.passes:
                    passing.append(job)
                else:
                    self.stats.still += 1
                    await self._settle(job.msg)
            if previous is not None and previous is not stored:
                await self.motion.save(previous, revision)
        return passing

    async def _report(self, job: Job) -> None:
        kf = job.keyframe
        key = None
        if job.found:
            key = snapshot_key(kf.camera, kf.wall_time, kf.session, kf.seq)
            jpeg = await asyncio.to_thread(render, job.image, job.found, self.det.snapshot_max_width,
                                           self.det.snapshot_quality)
            await self._upload(kf.camera, key, jpeg)
            self.stats.snapshots += 1
        for index, found in enumerate(job.found):
            detection = Detection(camera=kf.camera, time=kf.wall_time, label=found.label, class_id=found.class_id,
                                  score=found.score, box=found.box, model=self.model.name, session=kf.session,
                                  seq=kf.seq, index=index, snapshot_key=key)
            await self._publish(self.names.detections(kf.camera, found.label), detection.encode(),
                                detection_msg_id(kf.camera, kf.session, kf.seq, index))
        LATENCY.observe(max(0.0, time.time() - kf.wall_time))
        await self._settle(job.msg)

    # -- I/O with retries ---------------------------------------------------------------------------

    async def _upload(self, camera: str, key: str, jpeg: bytes) -> None:
        bucket = self.ctx.settings.s3.bucket

        def put() -> None:
            self.s3.put_object(bucket, key, io.BytesIO(jpeg), len(jpeg), content_type="image/jpeg")

        def failed() -> None:
            self.stats.upload_retries += 1
            self._keep_alive()

        await retry_until_done(lambda: asyncio.to_thread(put), self.s3_outage, camera, self._backoff(), failed)

    async def _publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        js: JetStreamContext = self.ctx.js

        async def publish() -> None:
            ack = await js.publish(subject, payload, timeout=self.det.publish_timeout_s,
                                   headers={"Nats-Msg-Id": msg_id})
            if ack.duplicate:
                self.stats.duplicates += 1
            else:
                self.stats.detections += 1

        def failed() -> None:
            self.stats.publish_retries += 1
            self._keep_alive()

        await retry_until_done(publish, self.nats_outage, camera_of(msg_id) or msg_id, self._backoff(), failed)

    def _keep_alive(self) -> None:
        """Tell JetStream the keyframes are still being worked on, so they are not handed to another replica."""
        self.in_flight.keep_alive()

    async def _settle(self, msg: Msg, terminate: bool = False) -> None:
        await self.in_flight.settle(msg, Ack.TERM if terminate else Ack.ACK)

    def _settle_failed(self, exc: BaseException) -> None:  # redelivered later; message ids prevent duplicates
        self.log_once.warning("ack", "ack failed (%s); the keyframe will be redelivered", type(exc).__name__)

    def _backoff(self) -> Backoff:
        return Backoff(0.2, 5.0)


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
