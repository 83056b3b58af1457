"""Tracked-object events end to end: the scripted street camera (tests/tracking_scene.py: real photos on a real
street, known ground truth) through the real detector (YOLOv4-tiny), real NATS and S3, with one replica, two, and
two of which one is killed (-9) mid-run. Every object that appears gets exactly one `new`, every object that leaves
exactly one `end`, the masked one nothing at all, the zone crosser its `entered_zones`, the parked bus one stationary
`update` and then silence; when the camera stops, the end timer ends the bus."""

import asyncio
import time
from collections import Counter, defaultdict

import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy

from spectare.core.registry import CameraRegistry
from spectare.core.store import s3_client
from spectare.schemas import CameraConfig, Detection, Keyframe, ObjectEvent

from . import tracking_scene as scene
from .helpers import ServiceProcess, eventually
from .test_detector import consumer_ready, h264_keyframe

CAMERA = "street"
SEQ_STEP = 30  # packet seqs between keyframes (a 2 s GOP at 15 fps would be 30 packets)
PACE_S = 0.6  # real seconds between published keyframes; their wall times step by 1 s (a 1 fps camera)
DETECTOR_ENV = {"SPECTARE_DETECTOR__END_CHECK_S": "0.5", "SPECTARE_DETECTOR__ACK_WAIT_S": "5"}


@pytest.fixture
def detectors(settings, tmp_path):
    started: list[ServiceProcess] = []

    def start(name: str) -> ServiceProcess:
        process = ServiceProcess("detector", settings, tmp_path / f"{name}.log", **DETECTOR_ENV).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


async def register(js, settings) -> None:
    registry = await CameraRegistry.open(js, settings)
    await registry.put(CameraConfig.create(
        name=CAMERA, url=f"rtsp://nowhere.invalid/{CAMERA}", min_hits=2, end_after_s=4.0, stationary_after_s=5.0,
        zones=({"name": "door", "points": scene.DOOR},),
        masks=({"name": "kiosk", "points": scene.KIOSK, "motion": True},)))


async def play(js, settings, base: float, on_keyframe=None) -> None:
    """Publish the scene's keyframes, wall times base + k seconds, one every PACE_S."""
    encoded = [h264_keyframe(scene.picture(k)) for k in range(scene.KEYFRAMES)]
    for k, data in enumerate(encoded):
        keyframe = Keyframe(camera=CAMERA, session="s1", seq=k * SEQ_STEP, wall_time=base + k, codec="h264",
                            width=scene.WIDTH, height=scene.HEIGHT, data=data)
        await js.publish(settings.names.keyframes(CAMERA), keyframe.encode(),
                         headers={"Nats-Msg-Id": f"{CAMERA}:s1:{k * SEQ_STEP}"})
        if on_keyframe is not None:
            on_keyframe(k)
        await asyncio.sleep(PACE_S)


async def stored(js, settings, subject: str, kind):
    """Every message the stream holds on `subject`, decoded, in order (what a JetStream consumer gets)."""
    sub = await js.pull_subscribe(subject, stream=None, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
    found = []
    try:
        while (await sub.consumer_info()).num_pending:
            for msg in await sub.fetch(100, timeout=5):
                found.append(kind.decode(msg.data))
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return found


def actor_of(event: ObjectEvent) -> str | None:
    return scene.actor_at(event.box, event.keyframe_seq // SEQ_STEP)


async def settled(js, settings) -> bool:
    info = await js.consumer_info(settings.names.keyframes_stream, "detector")
    return info.num_pending == 0 and info.num_ack_pending == 0


def check_scene(events: list[ObjectEvent], detections: list[Detection]) -> dict[str, list[ObjectEvent]]:
    """The ground truth assertions; returns each actor's events."""
    by_object: dict[str, list[ObjectEvent]] = defaultdict(list)
    for event in events:
        by_object[event.object_id].append(event)
    news = [e for e in events if e.type == "new"]
    new_actors = Counter(actor_of(e) for e in news)
    assert new_actors == Counter({"bus": 1, "walker": 1, "crosser": 1}), \
        f"one new per object that appeared (recall 100 %, duplicates 0): {new_actors}"
    ids = Counter((e.object_id, e.seq) for e in events)
    assert max(ids.values()) == 1, f"an event stored twice: {ids.most_common(2)}"
    by_actor = {actor_of(e): by_object[e.object_id] for e in news}
    for name in scene.LEAVING:
        assert [e.type for e in by_actor[name]].count("end") == 1, (name, by_actor[name])
        assert by_actor[name][-1].type == "end"
    assert "door" in by_actor["crosser"][-1].entered_zones, by_actor["crosser"]
    assert "door" not in by_actor["walker"][-1].entered_zones
    bus = by_actor["bus"]
    assert bus[0].label == "bus"
    assert [e.type for e in bus] == ["new", "update"] and bus[1].changes == ("stationary",) and bus[1].stationary, \
        f"the parked bus: one new, one stationary update, then nothing while it stays: {bus}"
    assert all(e.seq == i for events_of in by_object.values() for i, e in enumerate(events_of))
    assert all(e.snapshot_key for e in news), "every new carries its best snapshot"
    masked = [d for d in detections if scene.actor_at(d.box, d.seq // SEQ_STEP) == "masked"]
    assert not masked, f"the masked person was reported: {masked[:2]}"
    assert any(scene.actor_at(d.box, d.seq // SEQ_STEP) == "walker" for d in detections), "detections.> stays"
    return by_actor


async def run_scene(js, settings, replicas: list[ServiceProcess], on_keyframe=None):
    await register(js, settings)
    await eventually(lambda: consumer_ready(js, settings, pulling=len(replicas)), 90, what="replicas pulling")
    base = time.time()
    await play(js, settings, base, on_keyframe)
    await eventually(lambda: settled(js, settings), 120, what="every keyframe settled")
    events = await stored(js, settings, settings.names.events(CAMERA), ObjectEvent)
    detections = await stored(js, settings, settings.names.detections(CAMERA), Detection)
    by_actor = check_scene(events, detections)
    bus_id = by_actor["bus"][0].object_id
    assert all(e.type != "end" for e in events if e.object_id == bus_id), "the bus stays while keyframes come"
    return base, bus_id


async def the_timer_ends_the_bus(js, settings, base: float, bus_id: str) -> None:
    """The camera stopped: no keyframe comes, yet the parked bus ends once end_after_s passed its last one."""
    async def ended() -> list[ObjectEvent]:
        events = await stored(js, settings, settings.names.events(CAMERA), ObjectEvent)
        return [e for e in events if e.object_id == bus_id and e.type == "end"]

    end = await eventually(ended, 90, interval=1.0, what="the end timer's end of the bus")
    assert len(end) == 1 and end[0].time >= base + scene.KEYFRAMES - 1 + 4.0
    assert end[0].last_seen == pytest.approx(base + scene.KEYFRAMES - 1)


async def test_one_detector_one_alert_per_object(js, settings, detectors):
    replica = detectors("detector")
    base, bus_id = await run_scene(js, settings, [replica])
    snapshot = (await stored(js, settings, settings.names.events(CAMERA), ObjectEvent))[0].snapshot_key
    s3 = s3_client(settings.s3)
    assert s3.stat_object(settings.s3.bucket, snapshot).size > 1000, "the best snapshot is in S3"
    await the_timer_ends_the_bus(js, settings, base, bus_id)


async def test_two_replicas_track_one_camera_as_one(js, settings, detectors):
    replicas = [detectors("detector-a"), detectors("detector-b")]
    base, bus_id = await run_scene(js, settings, replicas)
    await the_timer_ends_the_bus(js, settings, base, bus_id)
    worked = []
    for replica in replicas:
        assert replica.stop() == 0
        summary = next(line for line in replica.log.splitlines() if "detector stopped:" in line)
        worked.append(int(summary.split("keyframes ")[1].split(",")[0]))
    assert min(worked) > 0, f"both replicas tracked the camera: {worked}"


async def test_a_replica_killed_mid_run_reports_no_object_twice(js, settings, detectors):
    replicas = [detectors("detector-a"), detectors("detector-b")]

    def kill_one(k: int) -> None:
        if k == scene.KEYFRAMES // 2:
            replicas[0].kill()

    base, bus_id = await run_scene(js, settings, replicas, kill_one)
    assert not replicas[0].alive()
    await the_timer_ends_the_bus(js, settings, base, bus_id)
