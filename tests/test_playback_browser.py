"""Browser playback in a real browser (Chromium through Playwright) against the real stack: NATS, S3, ingest,
segmenter, indexer and API processes recording camera `lobby` from an RTSP test camera in 2 s chunks.

The camera is stopped for a few seconds while the module's stack starts, so its footage has a gap between two
sessions. Every page logs in (`POST /auth/login`) and then relies on the session cookie alone: hls.js plays the
recorded footage (`vod.m3u8`) across chunk seams and the gap on the wall clock; the live WebSocket plays in
MediaSource within 2 s; the snapshot in an <img> and the detections' server-sent events work. A page of another
origin cannot ride on the cookie, and a revoked or expired session is refused.
"""

import asyncio
import time

import httpx
import pytest

from spectare.core.bus import connect, ensure_topology
from spectare.core.leases import LeaseTable
from spectare.core.registry import CameraRegistry
from spectare.core.store import ensure_bucket
from spectare.local.process import free_port
from spectare.local.testcam import RtspTestCamera
from spectare.schemas import CameraConfig, Detection

from .browser import (
    check_playback,
    fetch_status,
    hls_player_html,
    live_player_html,
    login,
    new_context,
    open_test_page,
    playlist_entries,
    timeline,
)
from .helpers import ServiceProcess, api_answering, eventually, run_cli, settings_for

pytestmark = pytest.mark.integration

CAMERA = "lobby"
SEGMENT_S = 2
DOWN_S = 5.0  # the camera is away this long: a gap between two sessions
COOKIE = "spectare_session"


class Stack:
    def __init__(self, settings, base_url: str, processes: dict[str, ServiceProcess]) -> None:
        self.settings, self.base_url, self.processes = settings, base_url, processes
        self.js = None
        self.read = self.admin = ""
        self.chunks: list[dict] = []  # the chunks recorded before the tests, across the gap, from the index
        self.gap: dict = {}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers={"Authorization": f"Bearer {self.read}"},
                                 timeout=30)

    async def footage(self, start: float) -> dict:
        async with self.client() as client:
            answer = await client.get(f"/cameras/byname/{CAMERA}/footage", params={"start": start})
            assert answer.status_code == 200, answer.text
            return answer.json()


def cli_token(settings, scope: str, name: str) -> str:
    done = run_cli(settings, "token", "create", "--scope", scope, "--name", name)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def session_of(key: str) -> str:
    return key.rsplit("/", 1)[-1].split("-", 1)[1].rsplit("-", 1)[0]


@pytest.fixture(scope="module")
async def stack(nats_server, s3_server, camera_clip, tmp_path_factory):
    root = tmp_path_factory.mktemp("playback")
    settings = settings_for(nats_server, s3_server, root / "state")
    ensure_bucket(settings.s3)
    nc = await connect(settings, "test-playback")
    js = nc.jetstream()
    await ensure_topology(js, settings)
    camera = RtspTestCamera({CAMERA: camera_clip}, root / "camera.log").start()
    port = camera.port
    registry = await CameraRegistry.open(js, settings)
    began = time.time()
    await registry.put(CameraConfig(name=CAMERA, url=camera.url(CAMERA), segment_seconds=SEGMENT_S, detect=False))
    api_port = free_port()
    processes = {
        "api": ServiceProcess("api", settings, root / "api.log", SPECTARE_API__PORT=str(api_port),
                              SPECTARE_API__SSE_MAX_S="10", SPECTARE_API__SSE_PING_S="0.5"),
        "ingest": ServiceProcess("ingest", settings, root / "ingest.log", SPECTARE_INGEST__MAX_CAMERAS="1",
                                 SPECTARE_INGEST__RECONNECT_MAX_S="1"),
        "segmenter": ServiceProcess("segmenter", settings, root / "segmenter.log"),
        "indexer": ServiceProcess("indexer", settings, root / "indexer.log",
                                  SPECTARE_INDEXER__DATABASE=str(root / "index.duckdb"),
                                  SPECTARE_INDEXER__FLUSH_INTERVAL_S="0.1"),
    }
    for process in processes.values():
        process.start()
    result = Stack(settings, f"http://127.0.0.1:{api_port}", processes)
    result.js = js
    try:
        await api_answering(processes["api"], result.base_url)
        leases = LeaseTable(await js.key_value(settings.names.leases_bucket), "ingest", "test")
        await eventually(lambda: _claimed(leases), 30, what="ingest claiming the camera")
        result.read = cli_token(settings, "read", "viewer")
        result.admin = cli_token(settings, "admin", "operator")

        async def sessions(at_least_chunks: int, count: int) -> dict | None:
            answer = await result.footage(began)
            by_session: dict[str, int] = {}
            for chunk in answer["chunks"]:
                by_session[session_of(chunk["key"])] = by_session.get(session_of(chunk["key"]), 0) + 1
            done = len(by_session) == count and list(by_session.values())[-1] >= at_least_chunks
            return answer if done and (count == 1 or any(g["end"] for g in answer["gaps"])) else None

        await eventually(lambda: sessions(4, 1), 60, what="four chunks recorded")
        camera.stop()
        await asyncio.sleep(DOWN_S)
        camera = RtspTestCamera({CAMERA: camera_clip}, root / "camera.log", port=port).start()
        answer = await eventually(lambda: sessions(2, 2), 60, what="two chunks recorded after the gap")
        result.chunks, result.gap = answer["chunks"], next(g for g in answer["gaps"] if g["end"])
        yield result
    finally:
        camera.stop()
        for process in processes.values():
            process.stop()
        await nc.close()
    for name in ("api", "segmenter", "indexer"):
        assert "Traceback" not in processes[name].log, processes[name].log[-3000:]


async def _claimed(leases: LeaseTable) -> bool:
    return CAMERA in await leases.owners()


async def logged_in(page, stack: Stack, token: str | None = None, origin: str | None = None) -> None:
    """Open a blank page on the API's origin and log in there with `token` (the read token by default)."""
    await open_test_page(page, origin or stack.base_url, "blank", "<!doctype html><title>blank</title>")
    answer = await login(page, token or stack.read)
    assert answer["status"] == 200, answer


def no_authorization_header(page) -> list[str]:
    """Collects the URL of every request the page sends with an Authorization header (there must be none)."""
    offenders: list[str] = []
    page.on("request", lambda request: offenders.append(request.url)
            if "authorization" in request.headers else None)
    return offenders


async def test_login_sets_an_httponly_strict_cookie_and_hls_js_plays_chunks_across_the_gap(stack, page, context,
                                                                                          tmp_path):
    offenders = no_authorization_header(page)
    await open_test_page(page, stack.base_url, "blank", "<!doctype html><title>blank</title>")
    anonymous = await fetch_status(page, "/cameras")
    assert anonymous["status"] == 401 and "POST /auth/login" in anonymous["body"]["detail"]
    answer = await login(page, stack.read)
    assert answer["status"] == 200 and answer["body"]["scope"] == "read" and answer["body"]["name"] == "viewer"
    cookie = next(c for c in await context.cookies() if c["name"] == COOKIE)
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert cookie["value"].startswith("sps_") and stack.read not in cookie["value"]
    assert COOKIE not in await page.evaluate("document.cookie"), "the page's scripts cannot read the cookie"
    assert (await fetch_status(page, "/cameras"))["status"] == 200

    # The playlist of everything recorded before the tests: the first session's chunks, a gap, the second's.
    start, end = stack.chunks[0]["start"], stack.chunks[-1]["end"]
    query = f"start={start!r}&end={end!r}"
    async with stack.client() as client:
        text = (await client.get(f"/cameras/byname/{CAMERA}/vod.m3u8?{query}")).text
    entries = playlist_entries(text)
    assert [e.wall_start for e in entries] == [pytest.approx(c["start"], abs=0.001) for c in stack.chunks]
    breaks = [n for n, e in enumerate(entries) if e.discontinuity]
    assert len(entries) >= 6 and len(breaks) == 1, text
    assert entries[breaks[0] - 1].wall_start + entries[breaks[0] - 1].duration <= stack.gap["start"] + 0.1
    assert entries[breaks[0]].wall_start >= stack.gap["end"] - 0.1

    url = f"/cameras/byname/{CAMERA}/vod.m3u8?{query}"
    await open_test_page(page, stack.base_url, "vod", hls_player_html(url, {"startPosition": 0}))
    segments = timeline(entries)
    last = segments[-1]

    async def near_the_end() -> bool:
        return await page.evaluate("document.getElementById('video').currentTime") > last.media_start + 1.0

    await eventually(near_the_end, 3 * (last.media_start + last.duration) + 30, what="playback of the last chunk")
    await page.screenshot(path=tmp_path / "vod.png")
    player = await page.evaluate("({errors: player.errors, samples: player.samples,"
                                 " width: document.getElementById('video').videoWidth})")
    assert player["errors"] == [] and player["width"] == 640
    check_playback(player["samples"], segments)
    assert offenders == [], f"requests sent with an Authorization header: {offenders}"


async def test_live_websocket_plays_in_media_source_within_two_seconds_with_the_cookie(stack, page, tmp_path):
    offenders = no_authorization_header(page)
    await logged_in(page, stack)
    await open_test_page(page, stack.base_url, "live", live_player_html(f"/cameras/byname/{CAMERA}/live"))

    async def playing() -> bool:
        return await page.evaluate("live.shown.length >= 30 || live.closed !== null || live.errors.length > 0")

    await eventually(playing, 30, what="30 live frames shown")
    await page.screenshot(path=tmp_path / "live.png")
    live = await page.evaluate("({opened: live.opened, streams: live.streams, shown: live.shown, errors: live.errors,"
                               " buffered: live.buffered, closed: live.closed,"
                               " frames: document.getElementById('video').getVideoPlaybackQuality().totalVideoFrames})")
    assert live["errors"] == [] and live["closed"] is None, live
    assert [s["codec"] for s in live["streams"]] == ["h264"] and live["streams"][0]["width"] == 640
    first_shown = live["shown"][0][0]
    waited = first_shown - live["opened"]
    assert waited <= 2.0, f"the first live frame was shown {waited:.2f} s after opening the socket"
    media_times = [captured for _, captured in live["shown"]]
    assert media_times == sorted(media_times) and media_times[-1] - media_times[0] >= 1.0, "frames do not advance"
    assert live["frames"] >= 30
    # Frames are on the wall clock: shown a little after they were captured, never before.
    lags = [shown - captured for shown, captured in live["shown"]]
    assert min(lags) > -0.1 and max(lags) < 5.0, (min(lags), max(lags))
    assert offenders == []


async def test_snapshot_image_and_detection_events_work_with_the_cookie(stack, page):
    offenders = no_authorization_header(page)
    await logged_in(page, stack)
    size = await page.evaluate("""() => new Promise((resolve, reject) => {
        const img = new Image();
        img.onload = () => resolve([img.naturalWidth, img.naturalHeight]);
        img.onerror = () => reject(new Error("snapshot did not load"));
        img.src = "/cameras/byname/lobby/snapshot.jpg";
        document.body.append(img);
    })""")
    assert size == [640, 360]

    await page.evaluate("""() => new Promise((resolve, reject) => {
        window.events = [];
        const source = window.source = new EventSource("/detections/stream?camera=lobby&label=person");
        source.addEventListener("detection", (event) => window.events.push(JSON.parse(event.data)));
        source.onopen = () => resolve();
        source.onerror = () => reject(new Error("the event stream did not open"));
    })""")
    names = stack.settings.names
    for label, score in (("car", 0.7), ("person", 0.8)):
        detection = Detection(camera=CAMERA, time=time.time(), label=label, class_id=0, score=score,
                              box=(0.1, 0.2, 0.3, 0.4), model="test", session="s", seq=7)
        await stack.js.publish(names.detections(CAMERA, label), detection.encode())
    await page.wait_for_function("() => window.events.length >= 1", timeout=10_000)  # a function: no eval()
    events = await page.evaluate("window.events")
    assert [(e["camera"], e["label"], e["score"]) for e in events] == [(CAMERA, "person", 0.8)]
    assert offenders == []


async def test_a_page_of_another_origin_cannot_ride_on_the_cookie(stack, page, context, tmp_path):
    await logged_in(page, stack, stack.admin)
    # Same site (cookies ignore ports, so the browser sends the SameSite=Strict cookie), another origin.
    other = f"http://127.0.0.1:{free_port()}"
    evil = await context.new_page()
    await open_test_page(evil, other, "evil", "<!doctype html><title>another site</title>")

    async def refused(path: str, body: str | None = None) -> None:
        async with evil.expect_response(f"{stack.base_url}{path}") as response_info:
            await evil.evaluate("""([url, body]) => fetch(url, {method: "POST", credentials: "include",
                mode: "no-cors", headers: {"Content-Type": "text/plain"}, body}).catch(() => null)""",
                                [f"{stack.base_url}{path}", body])
        response = await response_info.value
        sent = await response.request.all_headers()
        assert COOKIE in sent.get("cookie", "") and sent["origin"] == other, sent
        assert response.status == 403, (path, response.status)  # the page may not read why (an opaque answer)

    await refused("/auth/logout")
    await refused("/cameras", '{"name": "evil", "url": "rtsp://192.0.2.1/x"}')
    closed = await evil.evaluate(f"""() => new Promise((resolve) => {{
        const socket = new WebSocket("{stack.base_url.replace('http', 'ws')}/cameras/byname/{CAMERA}/live");
        socket.onclose = (event) => resolve([event.code, event.reason]);
    }})""")
    assert closed[0] == 1008 and closed[1].startswith("cross-origin request"), closed
    await evil.screenshot(path=tmp_path / "evil.png")

    # Nothing happened: no camera made, the session still works; the API's own page may log out.
    async with stack.client() as client:
        assert (await client.get("/cameras/byname/evil")).status_code == 404
    assert (await fetch_status(page, "/cameras"))["status"] == 200
    assert (await fetch_status(page, "/auth/logout", "POST"))["status"] == 204
    assert (await fetch_status(page, "/cameras"))["status"] == 401


async def test_a_revoked_or_expired_session_gets_401(stack, browser, page, tmp_path):
    temporary = cli_token(stack.settings, "read", "temporary")
    await logged_in(page, stack, temporary)
    assert (await fetch_status(page, f"/cameras/byname/{CAMERA}"))["status"] == 200
    done = run_cli(stack.settings, "token", "revoke", temporary.split("_")[1])
    assert done.returncode == 0, done.stderr
    revoked = await fetch_status(page, f"/cameras/byname/{CAMERA}")
    assert revoked["status"] == 401 and "was revoked" in revoked["body"]["detail"], revoked
    assert await page.evaluate("""() => new Promise((resolve) => {
        const img = new Image();
        img.onload = () => resolve("loaded");
        img.onerror = () => resolve("refused");
        img.src = "/cameras/byname/lobby/snapshot.jpg";
    })""") == "refused"

    # A second API whose sessions last 2 s: after that the browser drops the cookie, and a browser that kept it
    # anyway (a clock behind) is refused by the API.
    port = free_port()
    short = ServiceProcess("api", stack.settings, tmp_path / "api-short.log", SPECTARE_API__PORT=str(port),
                           SPECTARE_API__SESSION_TTL_S="2").start()
    try:
        origin = f"http://127.0.0.1:{port}"
        await api_answering(short, origin)
        fresh = await new_context(browser)
        try:
            short_page = await fresh.new_page()
            await logged_in(short_page, stack, stack.read, origin)
            logged_at = time.time()
            assert (await fetch_status(short_page, "/cameras"))["status"] == 200
            cookie = next(c for c in await fresh.cookies() if c["name"] == COOKIE)
            await asyncio.sleep(max(0.0, logged_at + 2.5 - time.time()))
            dropped = await fetch_status(short_page, "/cameras")
            assert dropped["status"] == 401 and "missing API token" in dropped["body"]["detail"]
            await fresh.add_cookies([{**cookie, "expires": time.time() + 3600}])
            expired = await fetch_status(short_page, "/cameras")
            assert expired["status"] == 401 and "expired" in expired["body"]["detail"], expired
            await short_page.screenshot(path=tmp_path / "expired.png")
        finally:
            await fresh.close()
    finally:
        short.stop()
    assert "Traceback" not in short.log
