"""The HTTP API as a real subprocess (`python -m spectare.api`) over real NATS, S3 and the services: tokens and
scopes, camera CRUD through HTTP and the CLI, bad input, /stats with a recording and an orphaned camera, a
snapshot JPEG, footage, search and clip export, server-sent detections, metrics and the scaling signal.

One stack for the module: ingest, segmenter and indexer record camera `cam1` from the RTSP test camera in
2-second chunks while the tests run. Every response body any test receives is kept, and none may contain a
camera password.
"""

import asyncio
import io
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.request

import av
import cv2
import httpx
import numpy as np
import pytest

from spectare.core.bus import connect, ensure_topology
from spectare.core.leases import LeaseTable
from spectare.core.registry import CameraRegistry
from spectare.core.store import ensure_bucket, s3_client
from spectare.local.process import free_port
from spectare.schemas import CameraConfig, Detection

from .helpers import ServiceProcess, api_answering, eventually, run_cli, settings_for

PASSWORD = "s3cr3t-Pa55"  # every camera URL in this module carries it; no response may
PER_WORKER = 2  # the API's scaling capacity in this module: 3 cameras need 2 ingest workers


class Stack:
    def __init__(self, settings, base_url: str, processes: dict[str, ServiceProcess]) -> None:
        self.settings = settings
        self.base_url = base_url
        self.processes = processes
        self.bodies: list[str] = []
        self.admin = ""
        self.read = ""

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        async def keep(response: httpx.Response) -> None:
            if "text/event-stream" not in response.headers.get("content-type", ""):
                await response.aread()
                self.bodies.append(response.text if "image/" not in response.headers.get("content-type", "")
                                   else response.content.decode("latin-1"))

        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30,
                                 event_hooks={"response": [keep]})


async def _has(leases: LeaseTable, camera: str) -> bool:
    return camera in await leases.owners()


def cli_token(settings, scope: str, name: str = "") -> str:
    done = run_cli(settings, "token", "create", "--scope", scope, "--name", name)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="module")
async def stack(nats_server, s3_server, rtsp_camera, tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    settings = settings_for(nats_server, s3_server, root / "state")
    ensure_bucket(settings.s3)
    nc = await connect(settings, "test-api")
    js = nc.jetstream()
    await ensure_topology(js, settings)
    registry = await CameraRegistry.open(js, settings)
    await registry.put(CameraConfig(name="cam1", url=rtsp_camera.url("cam1").replace("rtsp://", f"rtsp://admin:{PASSWORD}@"),
                                    segment_seconds=2, detect=False))
    port = free_port()
    processes = {
        "api": ServiceProcess("api", settings, root / "api.log", SPECTARE_API__PORT=str(port),
                              SPECTARE_API__MAX_CAMERAS_PER_WORKER=str(PER_WORKER), SPECTARE_API__SSE_MAX_S="3",
                              SPECTARE_API__SSE_PING_S="0.5", SPECTARE_API__STALE_AFTER_S="5"),
        "ingest": ServiceProcess("ingest", settings, root / "ingest.log", SPECTARE_INGEST__MAX_CAMERAS="1"),
        "segmenter": ServiceProcess("segmenter", settings, root / "segmenter.log"),
        "indexer": ServiceProcess("indexer", settings, root / "indexer.log",
                                  SPECTARE_INDEXER__DATABASE=str(root / "index.duckdb"),
                                  SPECTARE_INDEXER__FLUSH_INTERVAL_S="0.1"),
    }
    for process in processes.values():
        process.start()
    result = Stack(settings, f"http://127.0.0.1:{port}", processes)
    result.nc, result.js = nc, js
    try:
        await api_answering(processes["api"], result.base_url)
        # The one ingest worker (capacity 1) takes cam1; registered after that, `orphan` has nobody.
        leases = LeaseTable(await js.key_value(settings.names.leases_bucket), "ingest", "test")
        await eventually(lambda: _has(leases, "cam1"), 30, what="ingest claiming cam1")
        await registry.put(CameraConfig(name="orphan", url=f"rtsp://admin:{PASSWORD}@192.0.2.1/none", detect=False))
        result.admin = cli_token(settings, "admin", "tests")
        result.read = cli_token(settings, "read", "dashboard")
        yield result
    finally:
        for process in processes.values():
            process.stop()
        await nc.close()
    leaked = [body[:300] for body in result.bodies if PASSWORD in body]
    assert not leaked, f"a camera password was in {len(leaked)} response(s): {leaked}"
    assert "Traceback" not in processes["api"].log, processes["api"].log[-3000:]


async def test_healthz_is_open_and_every_other_endpoint_needs_a_token_of_the_right_scope(stack):
    async with stack.client() as anonymous:
        assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
        missing = await anonymous.get("/cameras")
        assert missing.status_code == 401 and "missing API token" in missing.json()["detail"]
        assert missing.headers["www-authenticate"] == "Bearer"
        for path in ("/stats", "/metrics", "/search", "/cameras/byname/cam1", "/cameras/byname/cam1/snapshot.jpg"):
            assert (await anonymous.get(path)).status_code == 401, path
    for bad in ("nonsense", "spt_0123456789ab_" + "x" * 43, stack.read[:-1] + ("A" if stack.read[-1] != "A" else "B")):
        async with stack.client(bad) as client:
            answer = await client.get("/cameras")
            assert answer.status_code == 401 and answer.json() == {"detail": "unknown or revoked API token"}

    async with stack.client(stack.read) as reader:
        assert (await reader.get("/cameras")).status_code == 200
        assert (await reader.get("/tokens/me")).json() == {"id": stack.read.split("_")[1], "name": "dashboard",
                                                           "scope": "read"}
        writes = [reader.post("/cameras", json={"name": "x", "url": "rtsp://h/x"}),
                  reader.put("/cameras/byname/cam1", json={"url": "rtsp://h/x"}),
                  reader.patch("/cameras/byname/cam1", json={"detect": True}),
                  reader.delete("/cameras/byname/cam1")]
        for answer in await asyncio.gather(*writes):
            assert answer.status_code == 403, answer.text
            assert answer.json()["detail"] == (f"this needs an admin token; token {stack.read.split('_')[1]} has "
                                               "scope read")

    # The CLI lists tokens without their secrets; a revoked token stops working at once.
    temporary = cli_token(stack.settings, "read", "temporary")
    listed = run_cli(stack.settings, "token", "list", "--json")
    views = json.loads(listed.stdout)
    assert {v["name"]: v["scope"] for v in views}.items() >= {"tests": "admin", "dashboard": "read",
                                                              "temporary": "read"}.items()
    assert temporary.split("_", 2)[2] not in listed.stdout and "sha256" not in listed.stdout
    async with stack.client(temporary) as client:
        assert (await client.get("/cameras")).status_code == 200
        revoked = run_cli(stack.settings, "token", "revoke", temporary.split("_")[1])
        assert revoked.returncode == 0 and "revoked read token" in revoked.stdout
        assert (await client.get("/cameras")).status_code == 401
    unknown = run_cli(stack.settings, "token", "revoke", "ffffffffffff")
    assert unknown.returncode == 1 and unknown.stderr.strip() == ("spectare: error: no token with id ffffffffffff; "
                                                                  "`spectare token list` shows them")


async def test_camera_crud_round_trip_through_http_and_the_cli(stack):
    url = f"rtsp://viewer:{PASSWORD}@192.0.2.7:554/stream1"
    async with stack.client(stack.admin) as admin:
        made = await admin.post("/cameras", json={"name": "porch", "url": url, "friendly_name": "Front porch",
                                                  "labels": ["person", "Traffic light"], "min_score": 0.6,
                                                  "keep_days": 7})
        assert made.status_code == 201, made.text
        view = made.json()
        assert view["url"] == "rtsp://viewer:***@192.0.2.7:554/stream1"
        assert view["labels"] == ["person", "traffic_light"] and view["keep_days"] == 7 and view["detect"] is True
        again = await admin.post("/cameras", json={"name": "porch", "url": url})
        assert again.status_code == 409 and "already exists" in again.json()["detail"]

        # Made over HTTP, seen by the CLI (which keeps the password too: ingest needs it).
        listed = run_cli(stack.settings, "camera", "list", "--json")
        porch = next(c for c in json.loads(listed.stdout) if c["name"] == "porch")
        assert porch["friendly_name"] == "Front porch" and porch["url"] == view["url"]
        registry = await CameraRegistry.open(stack.js, stack.settings)
        assert (await registry.get("porch")).url == url

        # PATCH changes what it names; null puts an optional field back to its default.
        patched = await admin.patch("/cameras/byname/porch", json={"detect": False, "min_score": None})
        assert patched.status_code == 200, patched.text
        assert (patched.json()["detect"], patched.json()["min_score"], patched.json()["keep_days"]) == (False, None, 7)
        # PUT replaces everything; sending the redacted URL back keeps the stored password.
        put = await admin.put("/cameras/byname/porch", json={"url": view["url"], "segment_seconds": 4})
        assert put.status_code == 200, put.text
        assert (put.json()["segment_seconds"], put.json()["detect"], put.json()["keep_days"]) == (4, True, None)
        stored = await registry.get("porch")
        assert stored.url == url and stored.created_at == pytest.approx(
            (await registry.get("porch")).created_at)
        created = await admin.put("/cameras/byname/garage", json={"url": f"rtsp://u:{PASSWORD}@192.0.2.8/s"})
        assert created.status_code == 201 and created.json()["url"] == "rtsp://u:***@192.0.2.8/s"

        # Made by the CLI, seen over HTTP.
        added = run_cli(stack.settings, "camera", "add", "lobby", f"rtsp://admin:{PASSWORD}@192.0.2.9/live",
                        "--friendly-name", "Lobby", "--no-detect")
        assert added.returncode == 0, added.stderr
        lobby = await admin.get("/cameras/byname/lobby")
        assert lobby.status_code == 200 and lobby.json()["url"] == "rtsp://admin:***@192.0.2.9/live"
        names = [c["name"] for c in (await admin.get("/cameras")).json()]
        assert {"cam1", "orphan", "porch", "garage", "lobby"} <= set(names) and names == sorted(names)

        for name in ("porch", "garage", "lobby"):
            assert (await admin.delete(f"/cameras/byname/{name}")).status_code == 204
        gone = await admin.get("/cameras/byname/porch")
        assert gone.status_code == 404 and gone.json()["detail"].startswith("no camera named 'porch'")
        assert (await admin.delete("/cameras/byname/porch")).status_code == 404
        assert "lobby" not in run_cli(stack.settings, "camera", "list").stdout


async def test_bad_input_is_refused_with_a_message_saying_what_is_wrong(stack):
    async with stack.client(stack.admin) as admin:
        unknown = await admin.post("/cameras", json={"name": "x1", "url": "rtsp://h/x", "colour": "red", "fps": 5})
        assert unknown.status_code == 422
        detail = unknown.json()["detail"]
        assert "unknown field 'colour'" in detail and "unknown field 'fps'" in detail, detail
        wrong = await admin.post("/cameras", json={"name": "x1", "url": "rtsp://h/x", "segment_seconds": "10"})
        assert wrong.status_code == 422 and "segment_seconds" in wrong.json()["detail"]
        bounds = await admin.post("/cameras", json={"name": "x1", "url": "rtsp://h/x", "min_score": 7})
        assert bounds.status_code == 422 and "min_score" in bounds.json()["detail"]
        bad_name = await admin.post("/cameras", json={"name": "Bad Name!", "url": "rtsp://h/x"})
        assert bad_name.status_code == 422 and bad_name.json()["detail"].startswith("body.name: invalid name: use 1-63")
        path_name = await admin.get("/cameras/byname/Bad..Name")
        assert path_name.status_code == 422 and path_name.json()["detail"].startswith("path.name: invalid name")
        scheme = await admin.post("/cameras", json={"name": "x1", "url": f"ftp://admin:{PASSWORD}@h/x"})
        assert scheme.status_code == 422 and "rtsp://" in scheme.json()["detail"]
        label = await admin.post("/cameras", json={"name": "x1", "url": "rtsp://h/x", "labels": ["no/slash"]})
        assert label.status_code == 422 and label.json()["detail"].startswith("body.labels.0: invalid label")
        null = await admin.patch("/cameras/byname/cam1", json={"url": None, "detect": None})
        assert null.status_code == 422 and null.json()["detail"].startswith("detect, url: cannot be null")
        not_json = await admin.post("/cameras", content=b"{not json", headers={"content-type": "application/json"})
        assert not_json.status_code == 422 and "JSON" in not_json.json()["detail"]
        infinite = await admin.post("/cameras", content=b'{"name": "x1", "url": "rtsp://h/x", "max_gb": Infinity}',
                                    headers={"content-type": "application/json"})
        assert infinite.status_code == 422 and "max_gb" in infinite.json()["detail"]
        huge = await admin.post("/cameras", json={"name": "x1", "url": "rtsp://h/" + "x" * 70_000})
        assert huge.status_code == 413 and "over the limit of 65536 bytes" in huge.json()["detail"]

        async def chunked():
            for _ in range(20):
                yield b" " * 5000

        streamed = await admin.post("/cameras", content=chunked(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413
        when = await admin.get("/search", params={"start": "next tuesday"})
        assert when.status_code == 400
        assert when.json()["detail"].startswith("start: cannot read 'next tuesday' as a time")
        backwards = await admin.get("/search", params={"start": "1h", "end": "2h"})
        assert backwards.status_code == 400 and backwards.json()["detail"] == "end must be after start"
        long_clip = await admin.post("/cameras/byname/cam1/clip", params={"start": "3h", "end": "now"})
        assert long_clip.status_code == 400 and "at most 3600 s" in long_clip.json()["detail"]
        assert (await admin.get("/cameras/byname/nosuch/snapshot.jpg")).status_code == 404
        # Garbage where a keyframe should be is the camera's problem, not the client's: 502, one line.
        await admin.put("/cameras/byname/junk", json={"url": "rtsp://192.0.2.3/x", "detect": False})
        await stack.js.publish(stack.settings.names.keyframes("junk"), b"\x93not a keyframe")
        junk = await admin.get("/cameras/byname/junk/snapshot.jpg")
        assert junk.status_code == 502 and junk.json()["detail"].startswith("camera junk's last keyframe cannot be "
                                                                             "shown: not a msgpack message")
        assert (await admin.delete("/cameras/byname/junk")).status_code == 204
    assert stack.processes["api"].alive()


def _camera(stats: dict, name: str) -> dict:
    return next(c for c in stats["per_camera"] if c["name"] == name)


async def test_stats_counts_the_recording_camera_and_the_orphaned_one(stack):
    async with stack.client(stack.read) as reader:
        seen: list[dict] = []

        async def recording():
            seen.append((await reader.get("/stats")).json())
            cam = _camera(seen[-1], "cam1")
            return seen[-1] if cam["state"] == "recording" and cam["fps"] and cam["chunks_last_hour"] else None

        try:
            stats = await eventually(recording, 60, interval=1, what="cam1 recording with a measured rate and chunks")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last /stats: {json.dumps(seen[-1:])}") from None
    assert stats["health"]["nats"]["ok"], stats["health"]
    assert stats["health"]["s3"]["ok"] and stats["health"]["indexer"]["ok"], stats["health"]
    assert stats["cameras"] == {"total": 2, "recording": 1, "camera_away": 0, "orphaned": 1}
    cam1, orphan = _camera(stats, "cam1"), _camera(stats, "orphan")
    assert cam1["ingest_worker"] and cam1["segmenter_worker"]
    assert 0 <= cam1["last_packet_age_s"] < 5
    # The test camera sends 15 frames a second; counting a packet group at the wrong end of the window said 18.5.
    assert cam1["fps"] == pytest.approx(15, rel=0.07), cam1
    assert cam1["ingest"]["state"] == "streaming" and cam1["ingest"]["worker"] == cam1["ingest_worker"], cam1
    assert 20_000 < cam1["bitrate_bps"] < 20_000_000, cam1
    assert {**orphan, "segmenter_worker": "any"} == {
        "name": "orphan", "state": "orphaned", "ingest": None, "ingest_worker": None, "segmenter_worker": "any",
        "last_packet_age_s": None, "fps": None, "bitrate_bps": None, "chunks_last_hour": 0}
    consumers = {c["consumer"]: c for c in stats["consumers"]}
    assert {"seg_cam1", "indexer_footage", "indexer_detections"} <= set(consumers), consumers
    assert all(c["lag"] == c["pending"] + c["ack_pending"] for c in consumers.values())
    assert stats["storage"]["source"] == "indexer" and stats["storage"]["footage_bytes"] > 0
    assert stats["scaling"] == {"cameras": 2, "max_cameras_per_worker": PER_WORKER, "ingest_workers_needed": 1,
                                "ingest_workers_live": 1}


async def test_snapshot_is_the_latest_keyframe_as_a_jpeg(stack):
    async with stack.client(stack.read) as reader:
        async def picture():
            answer = await reader.get("/cameras/byname/cam1/snapshot.jpg")
            return answer if answer.status_code == 200 else None

        answer = await eventually(picture, 30, what="a snapshot of cam1")
        assert answer.headers["content-type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (360, 640, 3)
        assert image.std() > 10, "a real picture, not a flat frame"
        none = await reader.get("/cameras/byname/orphan/snapshot.jpg")
        assert none.status_code == 404 and "no keyframe recently" in none.json()["detail"]


def encodes(metrics: str) -> float:
    found = re.search(r"^spectare_api_snapshot_encodes_total (\S+)$", metrics, re.M)
    assert found, metrics[-2000:]
    return float(found[1])


async def test_snapshot_is_named_by_its_keyframe_and_encoded_once_for_every_viewer(stack):
    async with stack.client(stack.read) as reader, stack.client(stack.admin) as admin:
        async def picture():
            answer = await reader.get("/cameras/byname/cam1/snapshot.jpg")
            return answer if answer.status_code == 200 else None

        first = await eventually(picture, 30, what="a snapshot of cam1")
        etag = first.headers["etag"]
        assert re.fullmatch(r'"[0-9a-f]+-[0-9a-f]+-\d+"', etag)  # "<session>-<seq>" of the keyframe shown
        assert first.headers["cache-control"] == "private, no-cache"

        async def not_modified():
            # The keyframe changes about every second, so a tag may be stale by the time it is sent back (for good:
            # keyframes never come back): each try revalidates the tag of a picture just fetched.
            fresh = await picture()
            if fresh is None:
                return None
            tag = fresh.headers["etag"]
            answer = await reader.get("/cameras/byname/cam1/snapshot.jpg", headers={"If-None-Match": tag})
            return (answer, tag) if answer.status_code == 304 else None
        again, tag = await eventually(not_modified, 30, interval=0, what="a 304 for the current keyframe")
        assert again.content == b"" and again.headers["etag"] == tag

        # Ten viewers at once: one encode per keyframe they saw, not one per viewer; the same bytes per ETag.
        before = encodes((await admin.get("/metrics")).text)
        answers = await asyncio.gather(*(reader.get("/cameras/byname/cam1/snapshot.jpg") for _ in range(10)))
        after = encodes((await admin.get("/metrics")).text)
        assert all(a.status_code == 200 for a in answers)
        pictures: dict[str, set[bytes]] = {}
        for answer in answers:
            pictures.setdefault(answer.headers["etag"], set()).add(answer.content)
        assert all(len(same) == 1 for same in pictures.values())
        assert 0 <= after - before <= len(pictures) < 10, (after - before, len(pictures))


async def test_footage_search_and_a_clip_that_downloads_and_plays(stack):
    async with stack.client(stack.read) as reader:
        async def chunks():
            answer = (await reader.get("/cameras/byname/cam1/footage", params={"start": "10m"})).json()
            return answer if len(answer.get("chunks", [])) >= 3 else None

        footage = await eventually(chunks, 60, interval=1, what="three chunks of cam1 indexed")
        first, last = footage["chunks"][0], footage["chunks"][-1]
        with urllib.request.urlopen(first["url"], timeout=10) as response:
            assert response.read(8)[4:8] == b"ftyp"
        unknown = await reader.get("/cameras/byname/nosuch/footage")
        assert unknown.status_code == 404

        # A detection on cam1 at the start of the second chunk is found by /search with its chunk.
        t = footage["chunks"][1]["start"]
        snapshot_key = f"snapshots/cam1/{time.strftime('%Y/%m/%d/%H', time.gmtime(t))}/20261127T000000.000Z-s%25x-1.jpg"
        picture = cv2.imencode(".jpg", np.full((48, 64, 3), 200, np.uint8))[1].tobytes()
        s3_client(stack.settings.s3).put_object(stack.settings.s3.bucket, snapshot_key, io.BytesIO(picture),
                                                len(picture), content_type="image/jpeg")
        detection = Detection(camera="cam1", time=t, label="person", class_id=0, score=0.9,
                              box=(0.1, 0.1, 0.5, 0.9), model="test", session="s", seq=1, snapshot_key=snapshot_key)
        await stack.js.publish(stack.settings.names.detections("cam1", "person"), detection.encode(),
                               headers={"Nats-Msg-Id": "cam1:s:1:0"})  # as the detector does: the indexer needs it

        async def incident():
            answer = (await reader.get("/search", params={"camera": "cam1", "label": "person", "start": "10m"})).json()
            return answer if answer.get("incidents") else None

        found = await eventually(incident, 30, what="the detection found by /search")
        assert found["incidents"][0]["max_score"] == pytest.approx(0.9)
        assert footage["chunks"][1]["key"] in [c["key"] for c in found["incidents"][0]["chunks"]]
        # Its snapshot comes through the API too, at the path the incident names (the session's % encoded).
        path = found["incidents"][0]["snapshot"]
        assert path == "/cameras/byname/cam1/snapshots/" + snapshot_key.split("/", 2)[2].replace("%", "%25")
        shot = await reader.get(path)
        assert shot.status_code == 200 and shot.content == picture and shot.headers["content-type"] == "image/jpeg"
        assert "immutable" in shot.headers["cache-control"]
        assert (await reader.get(path.replace("-1.jpg", "-2.jpg"))).status_code == 404
        for bad in ("../../footage/x.mp4", "2026/11/27/00/nope.jpg", "2026/11/27/00/20261127T000000.000Z-s-1.mp4"):
            assert (await reader.get(f"/cameras/byname/cam1/snapshots/{bad}")).status_code in (404, 422), bad
        assert (await reader.get("/cameras/byname/cam1/snapshots/" + "2026/11/27/00/x.jpg")).status_code == 422

        start, end = first["start"] + 0.5, last["end"] - 0.5
        clip = await reader.post("/cameras/byname/cam1/clip", params={"start": repr(start), "end": repr(end)})
        assert clip.status_code == 200, clip.text
        made = clip.json()
        assert made["key"].startswith("clips/cam1/") and made["start"] <= start and made["end"] <= end + 0.1
        with urllib.request.urlopen(made["url"], timeout=10) as response:
            data = response.read()
        assert len(data) == made["bytes"]
        with av.open(io.BytesIO(data)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert frames == made["frames"] and math.isclose(frames / 15, made["end"] - made["start"], abs_tol=0.2)
        # The same clip downloads through the API, as an attachment.
        file = made["key"].rsplit("/", 1)[1]
        assert made["download"] == f"/cameras/byname/cam1/clips/{file}"
        download = await reader.get(made["download"])
        assert download.status_code == 200 and download.content == data
        assert download.headers["content-type"] == "video/mp4"
        assert download.headers["content-disposition"] == f'attachment; filename="cam1-{file}"'
        assert (await reader.get("/cameras/byname/cam1/clips/nope.mp4")).status_code == 422
        assert (await reader.get(made["download"].replace("cam1/clips/2", "cam1/clips/1"))).status_code == 404
        async with stack.client() as anonymous:
            assert (await anonymous.get(made["download"])).status_code == 401
        nothing = await reader.post("/cameras/byname/cam1/clip", params={"start": "2001-01-01T00:00Z",
                                                                          "end": "2001-01-01T00:01Z"})
        assert nothing.status_code == 404 and "no recorded footage" in nothing.json()["detail"]


async def test_detections_arrive_as_server_sent_events(stack):
    names = stack.settings.names
    events: list[dict] = []
    async with stack.client(stack.read) as reader:
        async with reader.stream("GET", "/detections/stream", params={"camera": "orphan", "label": "person"}) as sse:
            assert sse.status_code == 200 and sse.headers["content-type"].startswith("text/event-stream")
            lines = sse.aiter_lines()
            assert (await anext(lines)).startswith("retry:")  # the stream is open: now publish
            for label, score in (("car", 0.7), ("person", 0.8)):
                detection = Detection(camera="orphan", time=time.time(), label=label, class_id=0, score=score,
                                      box=(0.1, 0.2, 0.3, 0.4), model="test", session="s", seq=7)
                await stack.js.publish(names.detections("orphan", label), detection.encode())
            async for line in lines:
                if line.startswith("data: "):
                    events.append(json.loads(line[len("data: "):]))
    # The server closed the stream after sse_max_s (3 s here); the car was filtered out.
    assert [(e["camera"], e["label"], e["score"]) for e in events] == [("orphan", "person", 0.8)]
    assert events[0]["box"] == [0.1, 0.2, 0.3, 0.4]


async def test_metrics_count_requests_by_route_and_say_how_many_ingest_workers_are_needed(stack):
    async with stack.client(stack.admin) as admin:
        await admin.put("/cameras/byname/extra", json={"url": "rtsp://192.0.2.5/x"})
        await admin.get("/cameras/byname/nosuch")
        text = (await admin.get("/metrics")).text
        await admin.delete("/cameras/byname/extra")
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line and not line.startswith("#")}
    assert samples["spectare_cameras_registered"] == 3
    assert samples["spectare_ingest_workers_needed"] == 2  # ceil(3 cameras / 2 per worker)
    assert samples["spectare_ingest_max_cameras_per_worker"] == PER_WORKER
    assert samples['spectare_api_requests_total{method="GET",route="/cameras/byname/{name}",status="404"}'] >= 1
    assert any(k.startswith('spectare_api_request_seconds_bucket{le="0.1",method="PUT",route="/cameras/byname/{name}"')
               for k in samples)
    assert not any("nosuch" in k for k in samples), "raw paths never become labels"


async def test_a_camera_whose_ingest_worker_stops_turns_orphaned(stack):
    """Last in the module: it stops the recording, then the indexer."""
    stack.processes["ingest"].stop()
    async with stack.client(stack.read) as reader:
        async def orphaned():
            stats = (await reader.get("/stats")).json()
            return stats if _camera(stats, "cam1")["state"] == "orphaned" else None

        stats = await eventually(orphaned, 20, interval=1, what="cam1 orphaned after ingest stopped")
    assert stats["cameras"] == {"total": 2, "recording": 0, "camera_away": 0, "orphaned": 2}
    assert _camera(stats, "cam1")["ingest"]["state"] == "stopped"  # what the worker said on its way out
    assert _camera(stats, "cam1")["ingest_worker"] is None and stats["scaling"]["ingest_workers_live"] == 0
    indexed_chunks = _camera(stats, "cam1")["chunks_last_hour"]

    # Without an indexer, chunks come from the FOOTAGE stream and storage is unknown.
    stack.processes["indexer"].stop()
    async with stack.client(stack.read) as reader:
        stats = (await reader.get("/stats")).json()
    assert stats["health"]["indexer"] == {"ok": False, "detail": "no indexer answers"}
    assert _camera(stats, "cam1")["chunks_last_hour"] >= indexed_chunks > 0  # the segmenter may have added some
    assert stats["storage"] == {"source": "unavailable", "footage_bytes": None, "footage_chunks": None,
                                "snapshots": None}


def test_the_api_without_nats_or_with_bad_settings_stops_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTARE_")}
    unreachable = subprocess.run([sys.executable, "-m", "spectare.api"], capture_output=True, text=True, timeout=30,
                                 cwd=tmp_path, env={**env, "SPECTARE_NATS__URL": f"nats://127.0.0.1:{free_port()}",
                                                    "SPECTARE_NATS__CONNECT_TIMEOUT": "1"})
    assert unreachable.returncode == 1
    lines = unreachable.stderr.strip().splitlines()
    assert len(lines) == 1 and "NATS at nats://127.0.0.1:" in lines[0] and "is unreachable" in lines[0], lines
    bad = subprocess.run([sys.executable, "-m", "spectare.api"], capture_output=True, text=True, timeout=30,
                         cwd=tmp_path, env={**env, "SPECTARE_API__MAX_BODY_BYTES": "10"})
    assert bad.returncode == 1
    assert bad.stderr.strip() == ("spectare-api: error: invalid settings: api.max_body_bytes: Input should be greater "
                                  "than or equal to 1024")
