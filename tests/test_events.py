"""Tracked-object events downstream of the detector, against real servers: the indexer (a subprocess) turns the
EVENTS stream into one row per object, `spectare search` and the API's `/search` return them (zone filter,
covering chunks, incidents only where no events exist), `spectare events tail` prints them, the API streams
them as server-sent events to a browser session cookie, and `spectare up`'s MQTT listener delivers them as JSON
to a real MQTT client (paho-mqtt). Until the detector's tracker publishes, the tests publish real ObjectEvent
messages (with the tracker's Msg-Ids) on the real bus themselves."""

import asyncio
import json
import re
import time
from http.cookies import SimpleCookie

import httpx
import paho.mqtt.client as mqtt
import pytest

from spectare.api.auth import SESSION_COOKIE
from spectare.core.bus import connect, ensure_topology
from spectare.core.config import load_settings
from spectare.core.registry import CameraRegistry
from spectare.core.store import ensure_bucket
from spectare.local.process import free_port
from spectare.schemas import CameraConfig, Detection, ObjectEvent, Segment, detection_id, event_id, segment_id
from spectare.schemas.keys import snapshot_key

from .helpers import ServiceProcess, api_answering, eventually, run_cli, settings_for
from .test_stack import Up, workdir  # noqa: F401 (the fixture)

NOW = time.time()
T0 = float(int(NOW) - 600)  # ten minutes ago: inside the default 24 h and the MQTT bridge's staleness limit
CAR_SNAPSHOT = snapshot_key("street", T0 + 3, "s1", 1)


def object_event(type_: str, seq: int, t: float, *, camera: str = "street", object_id: str = "s1-1",
                 label: str = "car", zones: tuple[str, ...] = (), entered: tuple[str, ...] = (),
                 snapshot: str | None = None, stationary: bool = False, score: float = 0.8) -> ObjectEvent:
    return ObjectEvent(type=type_, camera=camera, object_id=object_id, seq=seq, label=label, time=t,
                       first_seen=T0, last_seen=t, top_score=score, box=(0.1, 0.5, 0.3, 0.9), snapshot_key=snapshot,
                       zones=zones, entered_zones=entered, stationary=stationary,
                       changes=("zone_entered",) if type_ == "update" else (), session="s1", keyframe_seq=seq)


async def publish_event(js, settings, event: ObjectEvent) -> None:
    await js.publish(settings.names.events(event.camera, event.label), event.encode(),
                     headers={"Nats-Msg-Id": event_id(event.camera, event.object_id, event.seq)})


# street: a car that drives onto the drive and parks, then leaves; a person on the path (no zone filter match).
STREET = [
    object_event("new", 0, T0 + 1),
    object_event("update", 1, T0 + 3, zones=("drive",), entered=("drive",), snapshot=CAR_SNAPSHOT,
                 score=0.9),
    object_event("update", 2, T0 + 20, zones=("drive",), entered=("drive",), stationary=True, score=0.9),
    object_event("end", 3, T0 + 120, entered=("drive",), stationary=True, score=0.9),
    object_event("new", 0, T0 + 50, object_id="s1-2", label="person", entered=("path",), zones=("path",)),
]


class Stack:
    def __init__(self, settings, base_url, processes, nc, js) -> None:
        self.settings, self.base_url, self.processes, self.nc, self.js = settings, base_url, processes, nc, js
        self.read = ""


@pytest.fixture(scope="module")
async def stack(nats_server, s3_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("events")
    settings = settings_for(nats_server, s3_server, root / "state")
    ensure_bucket(settings.s3)
    nc = await connect(settings, "test-events")
    js = nc.jetstream()
    await ensure_topology(js, settings)
    registry = await CameraRegistry.open(js, settings)
    for name in ("street", "garage"):
        await registry.put(CameraConfig(name=name, url=f"rtsp://192.0.2.1/{name}", detect=False))
    port = free_port()
    processes = {
        "indexer": ServiceProcess("indexer", settings, root / "indexer.log",
                                  SPECTARE_INDEXER__DATABASE=str(root / "index.duckdb"),
                                  SPECTARE_INDEXER__FLUSH_INTERVAL_S="0.1"),
        "api": ServiceProcess("api", settings, root / "api.log", SPECTARE_API__PORT=str(port),
                              SPECTARE_API__SSE_MAX_S="4", SPECTARE_API__SSE_PING_S="0.5"),
    }
    for process in processes.values():
        process.start()
    result = Stack(settings, f"http://127.0.0.1:{port}", processes, nc, js)
    try:
        await api_answering(processes["api"], result.base_url)
        done = run_cli(settings, "token", "create", "--scope", "read", "--name", "events")
        assert done.returncode == 0, done.stderr
        result.read = done.stdout.strip()
        yield result
    finally:
        for process in processes.values():
            process.stop()
        await nc.close()
    for process in processes.values():
        assert "Traceback" not in process.log, process.log[-3000:]


async def test_events_are_one_row_per_object_searchable_by_zone_with_chunks_and_incidents_where_none(stack):
    settings, js = stack.settings, stack.js
    segment = Segment(camera="street", bucket=settings.s3.bucket, key="footage/street/a.mp4", session="s1",
                      first_seq=0, last_seq=9, start=T0, end=T0 + 30, frames=10, bytes=100, codec="h264", width=64,
                      height=64)
    await js.publish(settings.names.footage("street"), segment.encode(),
                     headers={"Nats-Msg-Id": segment_id("street", "s1", 0)})
    for event in [*STREET[3:], *STREET[:3], STREET[1]]:  # out of order, one twice (a redelivery, another replica)
        await publish_event(js, settings, event)
    for camera, t in (("garage", T0 + 5), ("street", T0 - 300)):  # no tracker on garage; street before its events
        detection = Detection(camera=camera, time=t, label="car", class_id=2, score=0.7, box=(0, 0, 1, 1),
                              model="m", session="s0", seq=1, index=0)
        await js.publish(settings.names.detections(camera, "car"), detection.encode(),
                         headers={"Nats-Msg-Id": detection_id(camera, "s0", 1, 0)})
    # Events, footage and detections are three streams with consumers of their own: two events rows say nothing
    # of the later messages of an object, the chunk or the incidents. Wait for all of it to be in.
    async def everything_indexed() -> dict | None:
        found = run_cli(settings, "search", "--since", "1h", "--json")
        assert found.returncode == 0, found.stderr
        answer = json.loads(found.stdout)
        cars = [e for e in answer["events"] if e["object_id"] == "s1-1"]
        done = (len(answer["events"]) == 2 and cars and cars[0]["ended"] and cars[0]["chunks"]
                and len(answer["incidents"]) == 2)
        return answer if done else None

    answer = await eventually(everything_indexed, 60, what="the events, the chunk and the incidents indexed")
    car, person = answer["events"]
    assert (car["object_id"], car["start"], car["end"], car["max_score"], car["entered_zones"], car["stationary"],
            car["ended"]) == ("s1-1", T0, T0 + 120, 0.9, ["drive"], True, True)
    assert car["snapshot_key"] == CAR_SNAPSHOT and car["snapshot_url"].startswith("http")
    assert [c["key"] for c in car["chunks"]] == ["footage/street/a.mp4"]
    assert person["object_id"] == "s1-2" and person["ended"] is False
    assert sorted((i["camera"], i["start"]) for i in answer["incidents"]) == [("garage", T0 + 5),
                                                                               ("street", T0 - 300)]
    in_drive = json.loads(run_cli(settings, "search", "--since", "1h", "--zone", "drive", "--json").stdout)
    assert [e["object_id"] for e in in_drive["events"]] == ["s1-1"] and in_drive["incidents"] == []
    table = run_cli(settings, "search", "--since", "1h", "--label", "car")
    assert table.returncode == 0 and "s1-1" in table.stdout and "stationary" not in table.stdout, table.stdout
    assert "ended" in table.stdout and "garage" in table.stdout

    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.read}"},
                                 timeout=30) as api:
        auto = (await api.get("/search", params={"start": T0 - 3600})).json()
        assert auto["kind"] == "auto" and [e["object_id"] for e in auto["events"]] == ["s1-1", "s1-2"]
        assert "/street/snapshots/" in auto["events"][0]["snapshot"] and auto["events"][1]["snapshot"] is None
        assert auto["events_total"] == 2 and auto["total"] == 2
        incidents = (await api.get("/search", params={"start": T0 - 3600, "kind": "incidents"})).json()
        assert incidents["events"] == [] and incidents["total"] == 2
        events_only = (await api.get("/search", params={"start": T0 - 3600, "kind": "events", "zone": "path"})).json()
        assert [e["object_id"] for e in events_only["events"]] == ["s1-2"] and events_only["incidents"] == []
        refused = await api.get("/search", params={"kind": "incidents", "zone": "drive"})
        assert refused.status_code == 400 and "incidents have no zones" in refused.json()["detail"]


async def test_events_tail_prints_the_stored_events_of_a_zone_as_json(stack):
    for event in STREET:
        await publish_event(stack.js, stack.settings, event)  # already stored (same Msg-Ids): kept once
    tail = await asyncio.to_thread(run_cli, stack.settings, "events", "tail", "--since", "1h", "--zone", "drive",
                                   "--json", "--for", "20s", "-n", "3")
    assert tail.returncode == 0, tail.stderr
    lines = [json.loads(line) for line in tail.stdout.splitlines()]
    # in stream order (the first test published them out of order): the car's new (no zone yet) and the person
    # (on the path) are left out
    assert sorted((e["type"], e["seq"]) for e in lines) == [("end", 3), ("update", 1), ("update", 2)]
    assert lines[0]["time_iso"].endswith("Z") and lines[0]["bucket"] == stack.settings.s3.bucket
    text = await asyncio.to_thread(run_cli, stack.settings, "events", "tail", "--since", "1h", "--label", "person",
                                   "--for", "20s", "-n", "1")
    assert text.returncode == 0 and re.search(r"new\s+street\s+person\s+s1-2", text.stdout), text.stdout


async def test_the_event_stream_sends_a_browser_session_the_events_of_its_zone(stack):
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as anonymous:
        login = await anonymous.post("/auth/login", json={"token": stack.read})
        cookie = SimpleCookie(login.headers["set-cookie"])[SESSION_COOKIE].value
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as anonymous:
        assert (await anonymous.get("/events/stream")).status_code == 401, "no cookie, no token: refused"
    received: list[dict] = []
    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"},
                                 timeout=30) as browser:
        async with browser.stream("GET", "/events/stream", params={"camera": "yard", "zone": "gate"}) as sse:
            assert sse.status_code == 200 and sse.headers["content-type"].startswith("text/event-stream")
            lines = sse.aiter_lines()
            assert (await anext(lines)).startswith("retry:")  # subscribed: now publish
            await publish_event(stack.js, stack.settings, object_event("new", 0, time.time(), camera="yard",
                                                                       object_id="y-1", label="person"))
            await publish_event(stack.js, stack.settings, object_event(
                "update", 1, time.time(), camera="yard", object_id="y-1", label="person", zones=("gate",),
                entered=("gate",)))
            await publish_event(stack.js, stack.settings, object_event("new", 0, time.time(), camera="street",
                                                                       object_id="s9", zones=("gate",)))
            kinds = []
            async for line in lines:  # until the server closes the stream after sse_max_s
                if line.startswith("event: "):
                    kinds.append(line[len("event: "):])
                if line.startswith("data: "):
                    received.append(json.loads(line[len("data: "):]))
    assert kinds == ["object"]
    assert [(e["camera"], e["object_id"], e["type"], e["entered_zones"]) for e in received] == [
        ("yard", "y-1", "update", ["gate"])]


@pytest.mark.integration
async def test_spectare_up_prints_an_mqtt_listener_where_a_client_gets_each_objects_new_and_end(workdir):  # noqa: F811
    up = Up(workdir)
    info = up.wait_ready(120)
    printed = re.search(r"MQTT\s+mqtt://127\.0\.0\.1:(\d+)\s+events as JSON on spectare/events/<camera>/<label>",
                        up.text)
    assert printed, up.text
    port = int(printed.group(1))
    assert info["mqtt"]["url"] == f"mqtt://127.0.0.1:{port}"

    received: list[tuple[str, dict]] = []
    subscribed = asyncio.Event()
    loop = asyncio.get_running_loop()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="home-assistant-test")
    client.on_message = lambda _c, _u, msg: received.append((msg.topic, json.loads(msg.payload)))
    client.on_subscribe = lambda *_: loop.call_soon_threadsafe(subscribed.set)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.subscribe("spectare/events/#", qos=1)
        await asyncio.wait_for(subscribed.wait(), 30)
        settings = load_settings()  # the stack's, found through ./.spectare
        nc = await connect(settings, "test-mqtt")
        try:
            js = nc.jetstream()

            async def bridge_ready():  # its consumer delivers events published from its creation on
                try:
                    return await js.consumer_info(settings.names.events_stream, "mqtt_bridge")
                except Exception:
                    return None

            await eventually(bridge_ready, 90, what="the indexer's MQTT bridge consumer")
            now = time.time()
            for event in (object_event("new", 0, now, camera="porch", object_id="p-1", label="person"),
                          object_event("end", 1, now + 1, camera="porch", object_id="p-1", label="person")):
                await publish_event(js, settings, event)
            await eventually(lambda: len(received) >= 2, 60, what="the new/end pair over MQTT")
        finally:
            await nc.close()
    finally:
        client.loop_stop()
        client.disconnect()
        assert up.interrupt() == 0
    topic = "spectare/events/porch/person"
    assert [(t, e["type"], e["object_id"], e["camera"]) for t, e in received] == [
        (topic, "new", "p-1", "porch"), (topic, "end", "p-1", "porch")]
    assert received[0][1]["time_iso"].endswith("Z")
