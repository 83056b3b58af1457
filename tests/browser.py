"""A real browser for the tests: Debian's headless Chromium (`make setup` installs it) driven by Playwright.

One Chromium for the session, a fresh context (cookies, storage) for each test, and a screenshot of every
page the test left open saved under its tmp folder at teardown (`failed-*.png` too, and a warning naming
it, when the test failed). A test that uses the browser marks itself `pytest.mark.integration`.

The API's session cookie is SameSite=Strict, so a test page must come from the API's own origin; it is
fulfilled by `page.route` at `<api origin>/__test/<name>.html` (and hls.js from web/node_modules at
`/__test/hls.min.js`), so the product ships no test-only route. Everything else the page asks the API
for goes to the real server.
"""

import subprocess
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
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


@pytest.fixture
async def context(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BrowserContext]:
    """A fresh browser context; at teardown, a screenshot of each of its open pages."""
    fresh = await browser.new_context(viewport={"width": 960, "height": 600})
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


def hls_player_html(playlist: str) -> str:
    """A page playing `playlist` with hls.js into a muted <video>, keeping for the test, in `window.player`:
    every hls.js error, and a sample every 100 ms of (currentTime, hls.playingDate in epoch seconds,
    decoded frames) once playback has a date."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>hls.js test player</title></head>
<body style="margin:0;background:#111">
<video id="video" muted autoplay playsinline style="width:100%"></video>
<script src="{HLS_JS_PATH}"></script>
<script>
const video = document.getElementById("video");
const player = window.player = {{errors: [], samples: [], supported: Hls.isSupported()}};
const hls = player.hls = new Hls({{enableWorker: true}});
hls.on(Hls.Events.ERROR, (_, data) => player.errors.push(
  `${{data.type}}/${{data.details}} fatal=${{data.fatal}} ${{data.url || (data.frag && data.frag.url) || ""}}`));
hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(e => player.errors.push(`play(): ${{e}}`)));
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
