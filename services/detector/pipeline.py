"""The detector's batch pipeline: what happens to a batch of keyframe messages (several cameras' keyframes go
through the model together when several are waiting). Fetching, following the registry and keeping messages
alive are the loop's (service.py); this module decides each message's fate and settles it through the
loop's `InFlight`:

  1. decode the message; garbage is terminated, counted and logged once;
  2. skip cameras that are unregistered or have detection off (acked at once: no decoding);
  3. decode the picture (PyAV, keyframes only) and run the motion gate, whose per-camera state lives
     in the `motion` KV bucket shared by every replica (see motion.py);
  4. run the model on the keyframes that passed;
  5. per keyframe with reported findings: a JPEG snapshot with the boxes drawn goes to S3, then one
     Detection per finding (its `index` i in score order) on `detections.<cam>.<label>` with `Nats-Msg-Id`
     `<cam>:<session>:<seq>:<i>`;
  6. per camera, its keyframes (those the gate found still too) through its tracker, in time order, and the
     events they raise published (`tracking.py`);
  7. ack. A keyframe is acked only after its snapshot is stored and its detections and events are published,
     so a crash re-runs it elsewhere, and the message ids keep the re-run from publishing anything twice
     (its tracker step is not repeated: the shared state is already past it).

S3 or NATS outages are ridden out with backoff while the batch stays un-acked (every message in flight is
kept alive with in-progress acks at each retry).
"""

import asyncio
import io
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields

import numpy as np
from minio import Minio
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from spectare.core.backoff import Backoff
from spectare.core.config import Settings
from spectare.core.consumer import Ack, InFlight
from spectare.core.errors import SchemaError
from spectare.core.logs import LogOnce
from spectare.core.metrics import histogram
from spectare.core.retry import Outage, retry_until_done
from spectare.media.frames import UndecodableKeyframe, decode_keyframe, thumbnail, to_bgr
from spectare.schemas import CameraConfig, Detection, Keyframe, MotionState, camera_of
from spectare.schemas.keys import snapshot_key

from .gate import THUMB_WIDTH, GateResult, hide, judge, newer
from .models import Found, ObjectDetector
from .motion import MotionStore
from .policy import CameraPolicy, camera_policy, detection_msg_id, reported
from .settings import DetectorSettings
from .snapshot import render
from .tracker import Finding, Frame
from .tracking import Tracking, TrackStore

log = logging.getLogger(__name__)

METRICS = {
    "keyframes": "keyframes taken from the stream",
    "unregistered": "keyframes of cameras not in the registry (acked, not looked at)",
    "detect_off": "keyframes of cameras with detection off (acked, not decoded)",
    "still": "keyframes the motion gate skipped",
    "inferred": "keyframes run through the model",
    "detections": "detections published",
    "duplicates": "detections JetStream already had (a re-run after a crash)",
    "events": "tracked-object events published (new, update, end)",
    "tracking_late": "keyframes left out of tracking: a later one of their camera was tracked first",
    "tracking_contended": "tracker steps started again: another replica wrote the camera's state first",
    "event_duplicates": "events JetStream already had (sent again after a replica died)",
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


@dataclass
class DetectorStats:
    keyframes: int = 0
    unregistered: int = 0
    detect_off: int = 0
    still: int = 0  # skipped by the motion gate
    inferred: int = 0  # keyframes run through the model
    detections: int = 0
    duplicates: int = 0  # detections JetStream already had (a re-run after a crash)
    events: int = 0
    event_duplicates: int = 0
    tracking_late: int = 0
    tracking_contended: int = 0
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
    snapshot_key: str | None = None

    @property
    def picture(self) -> np.ndarray:
        """The decoded image, for the steps after decoding (which drop the jobs that failed it)."""
        if self.image is None:
            raise RuntimeError(f"keyframe {self.keyframe.seq} of {self.keyframe.camera} was not decoded")
        return self.image


class Pipeline:
    """Runs batches of keyframe messages (several at once: `handle` may overlap with itself; the model takes one
    batch at a time). `camera` looks a camera's registry entry up (None: not registered)."""

    def __init__(self, settings: Settings, det: DetectorSettings, model: ObjectDetector, js: JetStreamContext,
                 s3: Minio, motion: MotionStore, tracks: TrackStore,
                 camera: Callable[[str], Awaitable[CameraConfig | None]], in_flight: InFlight,
                 stats: DetectorStats) -> None:
        self.settings = settings
        self.det = det
        self.model = model
        self.js = js
        self.s3 = s3
        self.motion = motion
        self.camera = camera
        self.in_flight = in_flight
        self.stats = stats
        self.names = settings.names
        self.log_once = LogOnce(log)
        self.s3_outage = Outage("snapshot uploads to S3")
        self.nats_outage = Outage("detection publishing on NATS")
        self.model_lock = asyncio.Lock()
        self.tracking = Tracking(tracks, self.names, self._publish_event)

    async def handle(self, msgs: list[Msg]) -> None:
        """Take one batch through steps 1-7; every message in it is settled on the way (or, when this raises,
        left to JetStream's redelivery)."""
        self.stats.batches += 1
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
            config = await self.camera(keyframe.camera)
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
        inferred = [job for job in jobs if job.gate is not None and job.gate.verdict.passes]
        results: list[list[Found]] = []
        if inferred:
            min_score = min(job.policy.min_score for job in inferred)
            async with self.model_lock:  # models are not thread-safe: one batch at a time in the model
                began = time.perf_counter()
                results = await asyncio.to_thread(self.model.detect, [job.picture for job in inferred], min_score)
                self.stats.model_seconds += time.perf_counter() - began
        self.stats.inferred += len(inferred)
        for job, found in zip(inferred, results, strict=True):
            job.found = reported(found, job.policy)
        await asyncio.gather(*(self._report(job) for job in inferred))
        await self._track(jobs)
        for job in jobs:
            await self._settle(job.msg)

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
                job.thumb = hide(thumbnail(frame, THUMB_WIDTH), [m.points for m in job.policy.masks if m.motion])

    async def _gate(self, jobs: list[Job]) -> list[Job]:
        """Every job with its gate verdict (the still ones skip the model, not the tracker). Each camera's
        keyframes are judged in time order against the picture before them, and the last one's picture is
        stored for the next."""
        by_camera: dict[str, list[Job]] = defaultdict(list)
        for job in jobs:
            by_camera[job.keyframe.camera].append(job)
        judged: list[Job] = []
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
                if not job.gate.verdict.passes:
                    self.stats.still += 1
                judged.append(job)
            if previous is not None and previous is not stored:
                await self.motion.save(previous, revision)
        return judged

    async def _track(self, jobs: list[Job]) -> None:
        """Each camera's keyframes through its tracker, in time order: a still keyframe (gate) shows the objects
        where they were; its events are published before the keyframes are acked."""
        by_camera: dict[str, list[Job]] = defaultdict(list)
        for job in jobs:
            by_camera[job.keyframe.camera].append(job)
        for camera, camera_jobs in by_camera.items():
            frames = [frame_of(job) for job in camera_jobs]
            await self.tracking.track(camera, frames, camera_jobs[-1].policy.rules)
        self.stats.tracking_late, self.stats.tracking_contended = self.tracking.late, self.tracking.contended

    async def _report(self, job: Job) -> None:
        kf = job.keyframe
        key = None
        if job.found:
            key = job.snapshot_key = snapshot_key(kf.camera, kf.wall_time, kf.session, kf.seq)
            jpeg = await asyncio.to_thread(render, job.picture, job.found, self.det.snapshot_max_width,
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

    # -- I/O with retries ---------------------------------------------------------------------------

    async def _upload(self, camera: str, key: str, jpeg: bytes) -> None:
        bucket = self.settings.s3.bucket

        def put() -> None:
            self.s3.put_object(bucket, key, io.BytesIO(jpeg), len(jpeg), content_type="image/jpeg")

        def failed() -> None:
            self.stats.upload_retries += 1
            self._keep_alive()

        await retry_until_done(lambda: asyncio.to_thread(put), self.s3_outage, camera, self._backoff(), failed)

    async def _publish_event(self, subject: str, payload: bytes, msg_id: str) -> None:
        await self._publish(subject, payload, msg_id, event=True)

    async def _publish(self, subject: str, payload: bytes, msg_id: str, event: bool = False) -> None:
        js = self.js

        async def publish() -> None:
            ack = await js.publish(subject, payload, timeout=self.det.publish_timeout_s,
                                   headers={"Nats-Msg-Id": msg_id})
            if event:
                if ack.duplicate:
                    self.stats.event_duplicates += 1
                else:
                    self.stats.events += 1
            elif ack.duplicate:
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

    def _backoff(self) -> Backoff:
        return Backoff(0.2, 5.0)


def frame_of(job: Job) -> Frame:
    """What the tracker sees of a keyframe: its reported findings, or None when the gate found it still."""
    kf = job.keyframe
    still = job.gate is not None and not job.gate.verdict.passes
    findings = None if still else tuple(Finding(f.label, f.score, f.box) for f in job.found)
    return Frame(time=kf.wall_time, session=kf.session, seq=kf.seq, findings=findings, snapshot_key=job.snapshot_key)
