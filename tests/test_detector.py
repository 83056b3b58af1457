"""The detector service against real NATS and S3, fed real photos as H.264 keyframes: detections and
snapshots, per-camera settings, bad input, the motion gate with two replicas, and a broken model."""

import asyncio
import json
import os
import sys
import time
from collections import Counter
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest
from nats.js.errors import NotFoundError

from spectare.core.config import ASSETS_DIR
from spectare.core.registry import CameraRegistry
from spectare.core.store import s3_client
from spectare.detector.motion import MotionStore
from spectare.detector.service import CONSUMER
from spectare.local.process import free_ports
from spectare.schemas import CameraConfig, Detection, Keyframe, detection_id

from .helpers import ServiceProcess, cli_env, eventually, metric, scrape

IMAGES = ASSETS_DIR / "images"


def photo(name: str) -> np.ndarray:
    path = IMAGES / name
    assert path.is_file(), f"{path} is missing: run `make setup`"
    image = cv2.imread(str(path))
    return image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]  # H.264 wants even sizes


def h264_keyframe(image: np.ndarray) -> bytes:
    """One self-contained H.264 IDR picture (Annex-B, parameter sets in-band), as a camera sends it."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
    encoder.time_base = Fraction(1, 15)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
    return b"".join(bytes(p) for p in encoder.encode(frame) + encoder.encode(None))


class Feed:
    """Publishes keyframes of real photos for registered cameras and collects what the detector says,
    every copy of it (a core subscription sees a re-published duplicate that JetStream would drop)."""

    def __init__(self, js, settings) -> None:
        self.js = js
        self.settings = settings
        self.names = settings.names
        self.received: list[tuple[Detection, str, str]] = []  # detection, subject, msg id
        self.sub = None
        self.seqs: Counter = Counter()
        self.encoded: dict[str, tuple[bytes, int, int]] = {}

    async def start(self) -> "Feed":
        async def collect(msg) -> None:
            self.received.append((Detection.decode(msg.data), msg.subject, msg.headers["Nats-Msg-Id"]))

        self.sub = await self.js._nc.subscribe(self.names.detections("*", "*"), cb=collect)
        return self

    async def register(self, name: str, **fields) -> None:
        registry = await CameraRegistry.open(self.js, self.settings)
        await registry.put(CameraConfig(name=name, url=f"rtsp://nowhere.invalid/{name}", **fields))

    async def send(self, camera: str, image_name: str, session: str = "s1") -> Keyframe:
        if image_name not in self.encoded:
            image = photo(image_name)
            self.encoded[image_name] = (h264_keyframe(image), image.shape[1], image.shape[0])
        data, width, height = self.encoded[image_name]
        seq = self.seqs[camera] * 15
        self.seqs[camera] += 1
        keyframe = Keyframe(camera=camera, session=session, seq=seq, wall_time=time.time(), codec="h264",
                            width=width, height=height, data=data)
        await self.publish_raw(camera, keyframe.encode(), f"{camera}:{session}:{seq}")
        return keyframe

    async def publish_raw(self, camera: str, payload: bytes, msg_id: str) -> None:
        await self.js.publish(self.names.keyframes(camera), payload, headers={"Nats-Msg-Id": msg_id})

    def of(self, camera: str) -> list[Detection]:
        return [d for d, _, _ in self.received if d.camera == camera]

    async def drained(self) -> bool:
        """Every keyframe handed out was settled (acked or terminated) and none waits."""
        try:
            info = await self.js.consumer_info(self.names.keyframes_stream, CONSUMER)
        except NotFoundError:
            return False
        return info.num_pending == 0 and info.num_ack_pending == 0


@pytest.fixture
async def feed(js, settings):
    f = await Feed(js, settings).start()
    yield f
    await f.sub.unsubscribe()


@pytest.fixture
def detectors(settings, tmp_path):
    started: list[ServiceProcess] = []

    def start(name: str = "detector", **env: str) -> ServiceProcess:
        process = ServiceProcess("detector", settings, tmp_path / f"{name}.log", **env).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


async def consumer_ready(js, settings, pulling: int = 0) -> bool:
    """The shared consumer exists and at least `pulling` pull requests wait on it (one per replica that is
    fetching: a replica still loading its model takes nothing, however long the test waits)."""
    try:
        info = await js.consumer_info(settings.names.keyframes_stream, CONSUMER)
    except NotFoundError:
        return False
    return (info.num_waiting or 0) >= pulling


async def test_people_and_a_bus_are_published_with_a_snapshot(js, settings, feed, detectors):
    await feed.register("street")
    detector = detectors()
    keyframe = await feed.send("street", "bus.jpg")
    await eventually(lambda: {d.label for d in feed.of("street")} >= {"person", "bus"}, 60,
                     what="person and bus detections")
    await asyncio.sleep(1.0)  # anything else of this keyframe arrives too
    found = feed.of("street")
    labels = Counter(d.label for d in found)
    assert labels["bus"] == 1 and labels["person"] >= 3, [(d.label, d.score) for d in found]
    for detection, subject, msg_id in feed.received:
        assert subject == settings.names.detections("street", detection.label)
        assert (detection.session, detection.seq, detection.time) == (keyframe.session, keyframe.seq,
                                                                        keyframe.wall_time)
        assert detection.model == "yolov4-tiny" and detection.score >= 0.5
        assert msg_id == detection_id("street", keyframe.session, keyframe.seq, detection.index)
    assert len({m for _, _, m in feed.received}) == len(feed.received), "message ids are distinct"
    assert sorted(d.index for d in found) == list(range(len(found))), "one index per finding, from 0"
    keys = {d.snapshot_key for d in found}
    assert len(keys) == 1 and next(iter(keys)).startswith("snapshots/street/")
    jpeg = s3_client(settings.s3).get_object(settings.s3.bucket, next(iter(keys))).read()
    snapshot = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert snapshot is not None and snapshot.shape[:2] == (1080, 810), "a decodable JPEG of the keyframe"
    await eventually(feed.drained, 10, what="keyframe acked")
    assert detector.alive()


async def test_camera_settings_choose_labels_scores_and_switch_detection(js, settings, feed, detectors):
    await feed.register("buses", labels=("bus",))
    await feed.register("sure", min_score=0.95)
    await feed.register("off", detect=False)
    detectors()
    for camera in ("buses", "sure", "off"):
        await feed.send(camera, "bus.jpg")
    await eventually(lambda: feed.of("buses") and feed.of("sure"), 60, what="detections of two cameras")
    await eventually(feed.drained, 20, what="every keyframe settled")
    assert {d.label for d in feed.of("buses")} == {"bus"}
    assert feed.of("sure") and all(d.score >= 0.95 for d in feed.of("sure"))
    assert feed.of("off") == [], "a camera with detection off gets none"

    # Switched on in the registry: the detector follows live.
    await feed.register("off", detect=True)
    await asyncio.sleep(1.0)
    await feed.send("off", "zidane.jpg")
    await eventually(lambda: feed.of("off"), 30, what="detections after detection was switched on")
    assert {d.label for d in feed.of("off")} == {"person"}


async def test_garbage_and_undecodable_keyframes_are_terminated_and_counted(js, settings, feed, detectors):
    await feed.register("cam")
    detector = detectors()
    await eventually(lambda: consumer_ready(js, settings), 30, what="detector consumer")
    await feed.publish_raw("cam", b"\x93not a keyframe", "garbage-1")
    for codec, data, seq in (("h264", b"\x00\x00\x00\x01" + b"\x65" * 300, 900), ("nosuchcodec", b"x", 901)):
        bad = Keyframe(camera="cam", session="bad", seq=seq, wall_time=time.time(), codec=codec, width=64,
                       height=64, data=data)
        await feed.publish_raw("cam", bad.encode(), f"cam:bad:{seq}")
    await feed.send("cam", "zidane.jpg")
    await eventually(lambda: feed.of("cam"), 60, what="a good keyframe detected after bad ones")
    await eventually(feed.drained, 20, what="bad keyframes settled, not redelivered")
    assert detector.alive()
    assert detector.stop() == 0
    log = detector.log
    assert log.count("undecodable message on") == 1 and log.count("keyframe bad:") == 1
    assert "garbage 1" in log and "undecodable 2" in log, log[-2000:]
    assert all(d.session != "bad" for d in feed.of("cam"))


async def test_motion_gate_with_two_replicas_skips_still_scenes_per_camera(js, settings, feed, detectors):
    await feed.register("still")
    await feed.register("busy")
    replicas = [detectors("detector-a"), detectors("detector-b")]
    await eventually(lambda: consumer_ready(js, settings, pulling=2), 60, what="both replicas pulling")
    rounds = 6
    for i in range(rounds):
        await feed.send("still", "bus.jpg")  # the same picture every time: only the first is worth a look
        await feed.send("busy", ("bus.jpg", "zidane.jpg")[i % 2])  # changes every time
        await asyncio.sleep(0.4)
    await eventually(lambda: len({d.seq for d in feed.of("busy")}) == rounds, 90, what="every busy keyframe")
    await eventually(feed.drained, 30, what="every keyframe settled")
    await asyncio.sleep(1.0)
    assert {d.seq for d in feed.of("still")} == {0}, "only the still camera's first keyframe passes the gate"
    ids = Counter(msg_id for _, _, msg_id in feed.received)
    assert max(ids.values()) == 1, f"a keyframe was detected twice: {ids.most_common(3)}"
    per_replica = []
    for replica in replicas:
        assert replica.stop() == 0
        summary = next(line for line in replica.log.splitlines() if "detector stopped:" in line)
        per_replica.append(int(summary.split("keyframes ")[1].split(",")[0]))
    assert sum(per_replica) == 2 * rounds, per_replica
    assert min(per_replica) > 0, f"both replicas share the work: {per_replica}"


async def test_a_missing_model_stops_the_detector_with_a_clear_error(settings, tmp_path, detectors):
    missing = tmp_path / "no-such-model"
    detector = detectors(SPECTARE_DETECTOR__MODEL_PATH=str(missing))
    await eventually(lambda: not detector.alive(), 30, what="detector exit")
    assert detector.proc.returncode == 1
    assert str(missing) in detector.log
    assert "Traceback" not in detector.log


async def test_rtsp_camera_with_people_to_person_alerts_end_to_end(js, settings, feed, rtsp_camera, tmp_path,
                                                                   detectors):
    """Real footage of a street with people, over RTSP, through ingest and the detector, to a subscriber of
    person detections (the CLI's `detections tail`, as a user runs it) and a snapshot in S3."""
    registry = await CameraRegistry.open(js, settings)
    await registry.put(CameraConfig(name="market", url=rtsp_camera.url("cam1")))
    tail = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "spectare", "detections", "tail", "--camera", "market", "--label", "person",
        "--json", "-n", "1", "--for", "120s", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **cli_env(settings)})
    ingest = ServiceProcess("ingest", settings, tmp_path / "ingest.log").start()
    metrics_port = free_ports(1)[0]
    try:
        detectors(SPECTARE_METRICS_PORT=str(metrics_port))
        await eventually(lambda: any(d.label == "person" for d in feed.of("market")), 90,
                         what="a person detection from the RTSP camera")
        stdout, stderr = await asyncio.wait_for(tail.communicate(), 60)
        samples = scrape(metrics_port)
    finally:
        ingest.stop()
        if tail.returncode is None:
            tail.kill()
    assert tail.returncode == 0, stderr.decode()
    alert = json.loads(stdout.decode().strip().splitlines()[0])
    assert (alert["camera"], alert["label"]) == ("market", "person") and alert["score"] >= 0.5
    person = next(d for d in feed.of("market") if d.label == "person")
    assert time.time() - 120 < person.time <= time.time()
    jpeg = s3_client(settings.s3).get_object(settings.s3.bucket, person.snapshot_key).read()
    snapshot = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert snapshot is not None and snapshot.shape[:2] == (360, 640)
    assert metric(samples, "spectare_detector_detections_total") >= 1
    assert metric(samples, "spectare_detector_keyframes_total") >= 1
    assert metric(samples, "spectare_detector_latency_seconds_count") >= 1
    assert metric(samples, "spectare_consumer_lag_messages", stream=settings.names.keyframes_stream,
                  consumer="detector") is not None
    motion, _ = await MotionStore(await js.key_value(settings.names.motion_bucket)).load("market")
    assert motion is not None and motion.camera == "market", "the gate's picture is shared in KV"
