"""A real browser for the tests: Debian's headless Chromium (`make setup` installs it) driven by Playwright.

One Chromium for the session, a fresh context (cookies, storage) for each test, and a screenshot of every
page the test left open saved under its tmp folder at teardown (`failed-*.png` too, and a warning naming
it, when the test failed). A test that uses the browser marks itself `pytest.mark.integration`.

The API's session cookie is SameSite=Strict, so a test page must come from the API's own origin; it is
fulfilled by `page.route` at `<api origin>/__test/<name>.html` (and hls.js from web/node_modules at
`/__test/hls.min.js`), so the product ships no test-only route. Everything else the page asks the API
for goes to the real server.
"""

import json
import subprocess
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, Playwright, Route, async_playwright

CHROMIUM = Path("/usr/bin/chromium-headless-shell")
HLS_JS = Path(__file__).resolve().parents[1] / "web" / "node_modules" / "hls.js" / "dist" / "hls.min.js"
TEST_PATH = "/__test/"
HLS_JS_PATH = TEST_PATH + "hls.min.js"
# As root Chromium refuses to start sandboxed; video starts without a click; no background requests
# (this machine's network is closed: they would only fail, and add noise to the browser's log).
CHROMIUM_ARGS = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} is missing; run `make setup`")
    return path


@pytest.fixture(scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    chromium = await playwright.chromium.launch(executable_path=_require(CHROMIUM, "Chromium"), args=CHROMIUM_ARGS)
    yield chromium
    await chromium.close()


async def new_context(browser: Browser) -> BrowserContext:
    """A browser context as the tests use: a fixed viewport, and Local Network Access granted. Chromium places
    a page fulfilled by `page.route` in no address space, so it would block that page's WebSockets to loopback
    (ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS); a page the API itself serves is loopback like the API and
    needs no permission."""
    return await browser.new_context(viewport={"width": 960, "height": 600}, permissions=["local-network-access"])


@pytest.fixture
async def context(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh browser context (`new_context`); at teardown, a screenshot of each of its open pages."""
    fresh = await new_context(browser)
    yield fresh
    report = getattr(request.node, "rep_call", None)
    failed = report is not None and report.failed
    for n, open_page in enumerate(fresh.pages):
        suffix = f"-{n}" if n else ""
        try:
            await open_page.screenshot(path=tmp_path / f"screenshot{suffix}.png")
            if failed:
                shot = tmp_path / f"failed{suffix}.png"
                await open_page.screenshot(path=shot, full_page=True)
                warnings.warn(f"screenshot of the failed test's page {open_page.url}: {shot}", stacklevel=1)
        except Exception as exc:  # noqa: BLE001 - a page that crashed must not hide the test's own failure
            warnings.warn(f"no screenshot of {open_page.url}: {exc}", stacklevel=1)
    await fresh.close()


@pytest.fixture
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


async def serve(page: Page, url: str, body: bytes | str, content_type: str) -> None:
    """Answer `url` (exactly) with `body` in this page, without a server."""
    async def fulfill(route: Route) -> None:
        await route.fulfill(status=200, body=body, content_type=content_type, headers={"Cache-Control": "no-store"})

    await page.route(url, fulfill)


async def open_test_page(page: Page, origin: str, name: str, html: str) -> str:
    """Serve `html` at `<origin>/__test/<name>.html` with hls.js beside it, open it, and return its URL."""
    url = f"{origin}{TEST_PATH}{name}.html"
    await serve(page, f"{origin}{HLS_JS_PATH}", _require(HLS_JS, "hls.js").read_bytes(), "text/javascript")
    await serve(page, url, html, "text/html")
    await page.goto(url)
    return url


def hls_player_html(playlist: str, hls_config: dict | None = None, start_at: float | None = None) -> str:
    """A page playing `playlist` with hls.js (`hls_config` its Hls options) into a muted <video>, from the start or,
    given `start_at` (epoch seconds), from that moment: placed by the first segment's PROGRAM-DATE-TIME once the
    playlist is loaded, as a player seeking to a time does.

    Kept for the test in `window.player`: every hls.js error, and a sample every 100 ms of (currentTime,
    hls.playingDate in epoch seconds, decoded frames) once playback has a date; `loaded`, the epoch seconds when the
    playlist was asked for; `frames`, the first 300 frames shown (requestVideoFrameCallback: the epoch seconds
    each was expected on screen, its media time); and `startPosition`, where on its timeline a seek to `start_at`
    began."""
    seeking = {"autoStartLoad": False} if start_at is not None else {}
    config = json.dumps({"enableWorker": True, **(hls_config or {}), **seeking})
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>hls.js test player</title></head>
<body style="margin:0;background:#111">
<video id="video" muted autoplay playsinline style="width:100%"></video>
<script src="{HLS_JS_PATH}"></script>
<script>
const video = document.getElementById("video");
const startAt = {json.dumps(start_at)};
const player = window.player = {{errors: [], samples: [], frames: [], supported: Hls.isSupported(),
                                 loaded: (performance.timeOrigin + performance.now()) / 1000}};
function onFrame(_, frame) {{
  player.frames.push([(performance.timeOrigin + frame.expectedDisplayTime) / 1000, frame.mediaTime]);
  if (player.frames.length < 300) video.requestVideoFrameCallback(onFrame);
}}
video.requestVideoFrameCallback(onFrame);
const hls = player.hls = new Hls({config});
hls.on(Hls.Events.ERROR, (_, data) => player.errors.push(
  `${{data.type}}/${{data.details}} fatal=${{data.fatal}} ${{data.url || (data.frag && data.frag.url) || ""}}`));
// A seek leaves starting to the autoplay attribute: play() before it is placed shows the segment's first frame,
// and play() after it makes hls.js abort and reload the next segment.
if (startAt === null) {{
  hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(e => player.errors.push(`play(): ${{e}}`)));
}}
if (startAt !== null) hls.once(Hls.Events.LEVEL_LOADED, (_, data) => {{
  const first = data.details.fragments[0];
  player.startPosition = Math.max(0, startAt - first.programDateTime / 1000);
  hls.startLoad(player.startPosition);
}});
hls.loadSource({playlist!r});
hls.attachMedia(video);
setInterval(() => {{
  if (hls.playingDate) player.samples.push([video.currentTime, hls.playingDate.getTime() / 1000,
                                            video.getVideoPlaybackQuality().totalVideoFrames]);
}}, 100);
</script></body></html>"""


@dataclass(frozen=True)
class Segment:
    """A playlist entry: where it starts on the player's timeline and on the wall clock, and how long it is."""
    media_start: float
    wall_start: float
    duration: float


def check_playback(samples: list[list[float]], segments: list[Segment], tolerance_s: float = 0.1) -> None:
    """Playback went through every segment (so past every seam), and wherever it was, `hls.playingDate`
    was that segment's wall start plus the time into it, within `tolerance_s`."""
    assert samples, "hls.js never reported a playing date"
    for n, segment in enumerate(segments):
        inside = [s for s in samples if segment.media_start + 0.2 <= s[0] < segment.media_start + segment.duration]
        assert inside, f"playback never reached segment {n} ({segment}); last sample {samples[-1]}"
        for current, date, _ in inside:
            expected = segment.wall_start + current - segment.media_start
            assert abs(date - expected) <= tolerance_s, (
                f"at currentTime {current:.3f} (segment {n}) playingDate {date:.3f} is {date - expected:+.3f} s "
                f"from the segment's wall start + offset {expected:.3f}")
    frames = [s[2] for s in samples]
    assert frames[-1] > frames[0], f"no frames decoded while playing: {frames[0]} -> {frames[-1]}"


def fmp4_segments(source: Path, out_dir: Path, seconds: float, count: int) -> list[Path]:
    """Cut `count` self-contained fragmented-MP4 segments of `seconds` each from `source` (an H.264 MP4 with
    keyframes on those boundaries), without transcoding: each starts at time 0 and carries its own
    moov, as the segmenter's fMP4 chunks do."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = out_dir / f"seg{n}.mp4"
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{n * seconds}", "-t", f"{seconds}",
                        "-i", str(source), "-an", "-c", "copy", "-fflags", "+bitexact",
                        "-movflags", "frag_keyframe+empty_moov+default_base_moof", str(path)],
                       check=True, capture_output=True, timeout=60)
        paths.append(path)
    return paths


def live_player_html(live_path: str) -> str:
    """A page playing the live WebSocket at `live_path` (on the page's own origin) in MediaSource, as a browser
    player does: the `stream` message's mime opens a SourceBuffer, binary frames are appended in order, playback
    starts 0.3 s before the end of what is buffered and keeps near it (10 % faster when over 0.6 s behind, a
    jump when over 3 s).

    Kept in `window.live` for the test (times in epoch seconds): `opened` (the socket was made), `streams` (the
    `stream` messages), `buffered` (per frame, when its fragment was in the buffer and when it was captured:
    the stream's wall_time + the frame's presentation time, read from the fragment's moof), `shown` (per frame
    shown, requestVideoFrameCallback's expected display time and the capture time of its media time), `skipped`,
    `errors`, `closed` (code and reason)."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>live test player</title></head>
<body style="margin:0;background:#111">
<video id="video" muted autoplay playsinline style="width:100%"></video>
<script>
const now = () => (performance.timeOrigin + performance.now()) / 1000;
const video = document.getElementById("video");
const live = window.live = {{opened: now(), streams: [], buffered: [], shown: [], skipped: [], errors: [],
                             closed: null}};
const queue = [];
let source = null, buffer = null, timescale = 90000, wallTime = 0, pending = [];

function child(u8, view, type, start, end) {{  // the first box of `type` in [start, end): its body's bounds
  for (let at = start; at + 8 <= end;) {{
    let size = view.getUint32(at), header = 8;
    if (size === 1) {{ size = Number(view.getBigUint64(at + 8)); header = 16; }} else if (size === 0) size = end - at;
    if (String.fromCharCode(u8[at + 4], u8[at + 5], u8[at + 6], u8[at + 7]) === type) return [at + header, at + size];
    if (size < 8) return null;
    at += size;
  }}
  return null;
}}
function find(u8, types) {{
  const view = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  let bounds = [0, u8.length];
  for (const type of types) {{ bounds = child(u8, view, type, bounds[0], bounds[1]); if (!bounds) return null; }}
  return [view, bounds[0]];
}}
function readTimescale(init) {{
  const [view, at] = find(init, ["moov", "trak", "mdia", "mdhd"]);
  return view.getUint32(at + 4 + (view.getUint8(at) === 1 ? 16 : 8));
}}
function presentations(fragment) {{  // each sample's presentation time in seconds
  const [tv, tfdt] = find(fragment, ["moof", "traf", "tfdt"]);
  let dts = tv.getUint8(tfdt) === 1 ? Number(tv.getBigUint64(tfdt + 4)) : tv.getUint32(tfdt + 4);
  const [view, trun] = find(fragment, ["moof", "traf", "trun"]);
  const flags = view.getUint32(trun) & 0xffffff, count = view.getUint32(trun + 4);
  let at = trun + 8 + (flags & 1 ? 4 : 0) + (flags & 4 ? 4 : 0);
  const out = [];
  for (let i = 0; i < count; i++) {{
    const duration = flags & 0x100 ? view.getUint32(at) : 0; at += flags & 0x100 ? 4 : 0;
    at += flags & 0x200 ? 4 : 0; at += flags & 0x400 ? 4 : 0;
    const offset = flags & 0x800 ? view.getInt32(at) : 0; at += flags & 0x800 ? 4 : 0;
    out.push((dts + offset) / timescale);
    dts += duration;
  }}
  return out;
}}
function pump() {{
  if (!buffer || buffer.updating || !queue.length) return;
  const data = queue.shift();
  const isInit = find(data, ["moov"]) !== null;
  if (isInit) timescale = readTimescale(data);
  pending = isInit ? [] : presentations(data);
  try {{ buffer.appendBuffer(data); }} catch (e) {{ live.errors.push(`appendBuffer: ${{e}}`); }}
}}
function follow() {{  // stay near the live edge
  if (!video.buffered.length) return;
  const end = video.buffered.end(video.buffered.length - 1);
  if (video.paused || video.currentTime < video.buffered.start(0)) {{
    video.currentTime = Math.max(video.buffered.start(0), end - 0.3);
    video.play().catch(e => live.errors.push(`play(): ${{e}}`));
  }}
  const behind = end - video.currentTime;
  if (behind > 3.0) video.currentTime = end - 0.3;
  video.playbackRate = behind > 0.6 ? 1.1 : 1.0;
}}
function onFrame(_, frame) {{
  live.shown.push([(performance.timeOrigin + frame.expectedDisplayTime) / 1000, wallTime + frame.mediaTime]);
  video.requestVideoFrameCallback(onFrame);
}}
video.requestVideoFrameCallback(onFrame);
video.addEventListener("error", () => live.errors.push(`video: ${{video.error && video.error.message}}`));

const socket = new WebSocket(new URL({live_path!r}, location.href.replace(/^http/, "ws")));
socket.binaryType = "arraybuffer";
socket.onmessage = (event) => {{
  if (typeof event.data === "string") {{
    const message = JSON.parse(event.data);
    if (message.type === "skipped") {{ live.skipped.push(message); return; }}
    if (message.type !== "stream") return;
    live.streams.push(message);
    wallTime = message.wall_time;
    if (!source) {{
      source = new MediaSource();
      video.src = URL.createObjectURL(source);
      source.addEventListener("sourceopen", () => {{
        buffer = source.addSourceBuffer(message.mime);
        buffer.mode = "segments";
        buffer.addEventListener("updateend", () => {{
          const at = now();
          for (const t of pending) live.buffered.push([at, wallTime + t]);
          pending = [];
          follow();
          pump();
        }});
        buffer.addEventListener("error", () => live.errors.push("SourceBuffer error"));
        pump();
      }});
    }}
    return;
  }}
  queue.push(new Uint8Array(event.data));
  pump();
}};
socket.onerror = () => live.errors.push("WebSocket error");
socket.onclose = (event) => {{ live.closed = [event.code, event.reason]; }};
</script></body></html>"""


@dataclass(frozen=True)
class PlaylistEntry:
    """One segment of an HLS media playlist: its PROGRAM-DATE-TIME (epoch seconds), EXTINF and URI, and whether
    a discontinuity comes before it."""
    wall_start: float
    duration: float
    uri: str
    discontinuity: bool


def playlist_entries(text: str) -> list[PlaylistEntry]:
    """The segments of a media playlist whose every segment has a PROGRAM-DATE-TIME (as Spectare's do)."""
    out, date, duration, discontinuity = [], None, None, False
    for line in text.splitlines():
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            date = datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00")).timestamp()
        elif line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif line and not line.startswith("#"):
            assert date is not None and duration is not None, f"segment {line} without a date or EXTINF"
            out.append(PlaylistEntry(date, duration, line, discontinuity))
            date, duration, discontinuity = None, None, False
    return out


def timeline(entries: list[PlaylistEntry]) -> list[Segment]:
    """Where hls.js places each segment: back to back on its timeline (EXTINFs summed; a gap takes no time),
    each at its own wall start."""
    out, at = [], 0.0
    for entry in entries:
        out.append(Segment(at, entry.wall_start, entry.duration))
        at += entry.duration
    return out


async def login(page: Page, token: str) -> dict:
    """`POST /auth/login` from the page (so the browser keeps the cookie): its status and JSON body."""
    return await page.evaluate("""async (token) => {
        const r = await fetch("/auth/login", {method: "POST", headers: {"Content-Type": "application/json"},
                                              body: JSON.stringify({token})});
        return {status: r.status, body: await r.json()};
    }""", token)


async def fetch_status(page: Page, path: str, method: str = "GET") -> dict:
    """A request from the page with its cookies: status and JSON body (or text)."""
    return await page.evaluate("""async ([path, method]) => {
        const r = await fetch(path, {method});
        const text = await r.text();
        let body = text;
        try { body = JSON.parse(text); } catch (e) {}
        return {status: r.status, body};
    }""", [path, method])
