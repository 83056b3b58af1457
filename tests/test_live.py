"""Live video over WebSocket (`WS /cameras/byname/{name}/live`) against the API as a real subprocess, with ingest
recording `cam1` from the RTSP test camera (640x360, 15 fps, 1 s GOP) into real NATS.

The API runs with small limits so the tests see them act: a viewer may queue 20 frames, is dropped after 4 s
without taking data, waits 3 s for a first keyframe, and a camera's source stops 1 s after its last viewer.
"""

import asyncio
import contextlib
import socket
import statistics
import time

import httpx
import pytest
import websockets
from nats.js.errors import KeyDeletedError, KeyNotFoundError

from spectare.core.bus import bucket_keys, connect, ensure_topology
from spectare.core.leases import LeaseTable
from spectare.core.registry import CameraRegistry
from spectare.local.process import free_port
from spectare.media.fmp4 import boxes
from spectare.schemas import CameraConfig, PacketGroup

from .helpers import ServiceProcess, api_answering, eventually, run_cli, settings_for
from .live_client import closed_with, decode, samples, watch

FIRST_KEYFRAME_TIMEOUT_S, SEND_TIMEOUT_S, QUEUE_FRAMES = 3, 4, 20


class Stack:
    def __init__(self, settings, base_url: str, processes: dict[str, ServiceProcess], js) -> None:
        self.settings, self.base_url, self.processes, self.js = settings, base_url, processes, js
        self.token = ""

    def url(self, camera: str) -> str:
        return f"ws://{self.base_url.split('//', 1)[1]}/cameras/byname/{camera}/live"

    async def metrics(self) -> dict[str, float]:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10,
                                     headers={"Authorization": f"Bearer {self.token}"}) as client:
            text = (await client.get("/metrics")).text
        return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
                if line.startswith("spectare_api_live_")}

    async def consumers(self, camera: str) -> list[str]:
        """Consumers on MEDIA reading this camera's packets."""
        names = self.settings.names
        infos = await self.js.consumers_info(names.media_stream)
        return [c.name for c in infos if names.packets(camera) in (c.config.filter_subjects or [])
                or c.config.filter_subject == names.packets(camera)]


@pytest.fixture(scope="module")
async def stack(nats_server, s3_server, rtsp_camera, tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    settings = settings_for(nats_server, s3_server, root / "state")
    nc = await connect(settings, "test-live")
    js = nc.jetstream()
    await ensure_topology(js, settings)
    registry = await CameraRegistry.open(js, settings)
    await registry.put(CameraConfig(name="cam1", url=rtsp_camera.url("cam1"), detect=False))
    port = free_port()
    processes = {
        "api": ServiceProcess("api", settings, root / "api.log", SPECTARE_API__PORT=str(port),
                              SPECTARE_API__LIVE_FIRST_KEYFRAME_TIMEOUT_S=str(FIRST_KEYFRAME_TIMEOUT_S),
                              SPECTARE_API__LIVE_SEND_TIMEOUT_S=str(SEND_TIMEOUT_S),
                              SPECTARE_API__LIVE_QUEUE_FRAMES=str(QUEUE_FRAMES), SPECTARE_API__LIVE_LINGER_S="1"),
        "ingest": ServiceProcess("ingest", settings, root / "ingest.log", SPECTARE_INGEST__MAX_CAMERAS="1"),
    }
    for process in processes.values():
        process.start()
    result = Stack(settings, f"http://127.0.0.1:{port}", processes, js)
    try:
        await api_answering(processes["api"], result.base_url)
        leases = LeaseTable(await js.key_value(settings.names.leases_bucket), "ingest", "test")
        await eventually(lambda: _owns(leases, "cam1"), 30, what="ingest claiming cam1")
        await eventually(lambda: _keyframe(js, settings), 30, what="cam1's first keyframe in JetStream")
        # Registered once the one ingest worker (capacity 1) has cam1: nobody records `quiet`.
        await registry.put(CameraConfig(name="quiet", url="rtsp://192.0.2.1/none", detect=False))
        done = run_cli(settings, "token", "create", "--scope", "read", "--name", "live")
        assert done.returncode == 0, done.stderr
        result.token = done.stdout.strip()
        yield result
    finally:
        for process in processes.values():
            process.stop()
        await nc.close()
    assert "Traceback" not in processes["api"].log, processes["api"].log[-3000:]
    assert result.token not in processes["api"].log


async def _owns(leases: LeaseTable, camera: str) -> bool:
    return camera in await leases.owners()


async def _keyframe(js, settings) -> bool:
    try:
        await js.get_last_msg(settings.names.keyframes_stream, settings.names.keyframes("cam1"))
    except Exception:
        return False
    return True


async def test_a_viewer_gets_a_picture_at_once_and_then_the_stream_as_it_is_recorded(stack):
    opened = time.time()
    got = await watch(stack.url("cam1"), 5, stack.token)
    (stream, init, fragments), = got.streams()
    # stream + init + a first fragment within 2 s of opening, though ingest sends packets in 1 s groups
    assert got.messages[2][0] - opened < 2.0, [t - opened for t, _ in got.messages[:3]]
    assert stream["codec"] == "h264" and (stream["width"], stream["height"]) == (640, 360)
    assert stream["mime"].startswith('video/mp4; codecs="avc1.64') and stream["session"]
    assert [b.type for b in boxes(init)] == ["ftyp", "moov"]
    assert samples(fragments[0][1])[0].keyframe  # it starts at a keyframe

    frames = decode(init, [data for _, data in fragments])
    assert len(frames) >= 3 * 15  # 5 s of a 15 fps camera, give or take the first group
    assert frames[0].key_frame and all(a.time < b.time for a, b in zip(frames, frames[1:], strict=False))
    # The frames are live: captured (wall_time + media time) seconds before they arrived, not minutes.
    latencies = got.latencies()
    assert len(latencies) == len(frames) and max(latencies) < 3.0 and min(latencies) > -0.5, latencies


async def test_viewers_of_one_camera_share_one_consumer_that_stops_after_the_last_leaves(stack):
    await eventually(lambda: _none(stack), 30, what="no live consumer before the test")
    first = asyncio.create_task(watch(stack.url("cam1"), 6, stack.token))
    await eventually(lambda: stack.consumers("cam1"), 10, what="the first viewer's consumer")
    one = await stack.consumers("cam1")
    others = [asyncio.create_task(watch(stack.url("cam1"), 3, stack.token)) for _ in range(7)]
    await asyncio.sleep(2)
    eight = await stack.consumers("cam1")
    assert (await stack.metrics())["spectare_api_live_viewers"] == 8
    results = await asyncio.gather(first, *others)
    assert len(one) == 1 and eight == one, (one, eight)
    for got in results:  # every one of them saw the picture
        assert got.streams() and got.streams()[0][2] and samples(got.streams()[0][2][0][1])[0].keyframe
    await eventually(lambda: _none(stack), 10, what="the consumer gone after the last viewer left")


async def _none(stack: Stack) -> bool:
    return not await stack.consumers("cam1")


async def test_a_camera_that_reconnects_gets_a_new_stream_message_and_init_then_its_picture(stack):
    """Ingest restarted (a new lease, so a new session) while a viewer watches."""
    registry = await CameraRegistry.open(stack.js, stack.settings)
    quiet = await registry.get("quiet")
    watching = asyncio.create_task(watch(stack.url("cam1"), 30, stack.token))
    try:
        await asyncio.sleep(4)
        stack.processes["ingest"].stop()
        await registry.remove("quiet")  # the new worker (capacity 1) must take cam1
        stack.processes["ingest"].start()
        got = await watching
    finally:
        await registry.put(quiet)
    streams = got.streams()
    assert len(streams) == 2 and streams[0][0]["session"] != streams[1][0]["session"], [s for s, _, _ in streams]
    assert streams[1][0]["wall_time"] > streams[0][0]["wall_time"]
    for _, init, fragments in streams:
        assert samples(fragments[0][1])[0].keyframe
        frames = decode(init, [data for _, data in fragments])
        assert frames and frames[0].key_frame and all(a.time < b.time for a, b in zip(frames, frames[1:],
                                                                                        strict=False))


async def test_unknown_camera_closes_with_4404(stack):
    code, reason = await closed_with(stack.url("nosuchcam"), stack.token)
    assert (code, reason) == (4404, "no camera named 'nosuchcam'; `spectare camera list` shows the registered ones")
    code, reason = await closed_with(stack.url("Bad.Name"), stack.token)
    assert code == 4404 and reason.startswith("invalid camera name")


async def test_a_camera_that_is_not_publishing_closes_with_4408_after_the_timeout(stack):
    started = time.monotonic()
    code, reason = await closed_with(stack.url("quiet"), stack.token)
    took = time.monotonic() - started
    assert code == 4408 and reason == (f"camera quiet sent no keyframe within {FIRST_KEYFRAME_TIMEOUT_S} s (is it "
                                       "recording? see /stats)")
    assert FIRST_KEYFRAME_TIMEOUT_S - 0.5 <= took < FIRST_KEYFRAME_TIMEOUT_S + 10


async def test_no_credentials_close_with_1008(stack):
    assert (await closed_with(stack.url("cam1")))[0] == 1008
    assert (await closed_with(stack.url("cam1"), "spt_0123456789ab_" + "x" * 43))[0] == 1008


async def test_a_slow_viewer_skips_forward_a_stalled_one_is_dropped_and_the_others_keep_their_frames(stack):
    before = await stack.metrics()

    async def skipped() -> bool:
        now = await stack.metrics()
        return now["spectare_api_live_skipped_frames_total"] > before.get("spectare_api_live_skipped_frames_total", 0)

    def told_and_resumed(got) -> bool:
        """A `skipped` notice and a fragment after it."""
        notice = next((i for i, (_, m) in enumerate(got.messages) if isinstance(m, dict) and m["type"] == "skipped"),
                      None)
        return notice is not None and any(isinstance(m, bytes) for _, m in got.messages[notice + 1:])

    # A slow reader: one message a second through a small socket, against ~5 fragments a second, so its queue of
    # 20 frames overflows once the socket buffers between it and the server are full (how much they hold is the
    # kernel's to say). Once the server has skipped, it reads on at full speed: the notice and what follows it
    # come through those buffers.
    slow_task = asyncio.create_task(watch(stack.url("cam1"), 120, stack.token, read_delay_s=1.0, rcvbuf=4096,
                                          slow_until=skipped, until=told_and_resumed))
    healthy = await watch(stack.url("cam1"), 12, stack.token)
    slow = await slow_task

    # The healthy viewer got every frame in order: one session, no notice, contiguous decode times.
    assert not healthy.texts("skipped")
    (_, init, fragments), = healthy.streams()
    frames = decode(init, [data for _, data in fragments])
    assert len(frames) >= 9 * 15 and all(a.time < b.time for a, b in zip(frames, frames[1:], strict=False))

    # The slow one was told, and what came after each notice starts at a keyframe.
    notices = slow.texts("skipped")
    assert notices and all(n["frames"] > 0 and "fell behind" in n["reason"] for n in notices), slow.texts()
    assert told_and_resumed(slow), slow.texts()
    assert await skipped()  # and counted
    for i, (_, message) in enumerate(slow.messages):
        if isinstance(message, dict) and message["type"] == "skipped":
            following = next((m for _, m in slow.messages[i + 1:] if isinstance(m, bytes)), None)
            if following is not None:  # a notice can be the last thing the reader took
                assert samples(following)[0].keyframe

    # One that never reads is dropped after the send timeout: the server is done with it.
    stalled = await _stall(stack.url("cam1"), stack.token)
    try:
        await eventually(lambda: _dropped(stack, before), 30, what="the stalled viewer dropped")
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(30):
                while True:
                    await stalled.recv()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(stalled.close(), 5)


async def _stall(url: str, token: str):
    """A viewer that opens the socket and never reads (small buffers, so the server feels it within seconds)."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    return await websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"}, sock=sock,
                                    max_queue=1, max_size=None, open_timeout=10)


async def _dropped(stack: Stack, before: dict[str, float]) -> bool:
    now = await stack.metrics()
    return now["spectare_api_live_dropped_viewers_total"] > before.get("spectare_api_live_dropped_viewers_total", 0)


async def test_a_watched_camera_sends_short_packet_groups_and_long_ones_again_once_unwatched(stack):
    """Ingest waits up to `group_max_s` (1 s) to send packets together; while the API streams a camera live it
    marks it in the `live` bucket and ingest uses `live_group_max_s` (0.2 s) instead, so frames reach viewers
    sooner. The 15 fps test camera: 14 frames per 1 s group unwatched, about 4 (0.2 s) watched."""
    names = stack.settings.names
    await eventually(lambda: _unmarked(stack), 30, what="no live mark of cam1 before the test")
    sizes: list[tuple[float, int]] = []  # (arrival, packets) of every group that is not a lone keyframe

    async def on_group(msg) -> None:
        group = PacketGroup.decode(msg.data)
        if not (len(group.packets) == 1 and group.packets[0].keyframe):
            sizes.append((time.monotonic(), len(group.packets)))

    sub = await stack.js._nc.subscribe(names.packets("cam1"), cb=on_group)
    try:
        await asyncio.sleep(3)
        unwatched = [n for _, n in sizes]
        viewer = asyncio.create_task(watch(stack.url("cam1"), 6, stack.token))
        marks = await eventually(lambda: _marks(stack), 10, what="the API's live mark of cam1")
        marked_at = time.monotonic()
        await asyncio.sleep(4)
        watched = [n for at, n in sizes if at > marked_at + 0.5]  # groups begun before the mark may be long
        await viewer
        await eventually(lambda: _unmarked(stack), 10, what="the live mark deleted after the last viewer left")
        unmarked_at = time.monotonic()
        await asyncio.sleep(3.5)
        again = [n for at, n in sizes if at > unmarked_at + 1.2]
    finally:
        await sub.unsubscribe()
    assert len(marks) == 1 and marks[0].startswith("cam1."), marks
    assert unwatched and statistics.median(unwatched) >= 10, unwatched
    assert watched and max(watched) <= 6, watched  # 0.2 s of 15 fps, one more frame, a read interval's burst
    assert again and statistics.median(again) >= 10, again


async def _marks(stack: Stack) -> list[str]:
    """The live marks of cam1 in the bucket now (a deleted key's marker is not a mark)."""
    bucket = stack.settings.names.live_bucket
    kv = await stack.js.key_value(bucket)
    marks = []
    for key in await bucket_keys(stack.js, bucket):
        if key.startswith("cam1."):
            with contextlib.suppress(KeyDeletedError, KeyNotFoundError):
                await kv.get(key)
                marks.append(key)
    return marks


async def _unmarked(stack: Stack) -> bool:
    return not await _marks(stack)
