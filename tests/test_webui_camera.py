"""The web UI's camera view end to end: Chromium (Playwright) on the page the API serves, against the real stack
recording camera `porch` in 2 s chunks (tests/webstack.py).

Live video plays from the live WebSocket; a click on the timeline plays that moment with hls.js (`playingDate`
within 1 s) and on across chunk seams, and the address follows; a deep link `?t=` opens playing its moment; a
range shift-dragged on the timeline exports a clip whose download decodes; the phone viewport has no horizontal
scroll; and, last (it stops the camera), a gap shows on the timeline with its label. Screenshots of the view live
and playing at both sizes go to the run's screenshots folder.
"""

import asyncio
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import av
import pytest
from playwright.async_api import Browser, Page

from .helpers import eventually
from .webstack import DESKTOP, PHONE, WebStack, login, screenshot, web_stack

pytestmark = pytest.mark.integration

CAMERA = "porch"
ZONE = "Europe/Berlin"  # the page labels times in the browser's zone; the test's labels must use the same
VIEW = f"/cameras/{CAMERA}"
WINDOW_S = 60


@pytest.fixture(scope="module")
async def stack(nats_server, s3_server, camera_clip, tmp_path_factory):
    # windows of a minute (playlist_max_s): playback crosses windows within a test, as it does hours in use
    async with web_stack(nats_server, s3_server, {CAMERA: camera_clip}, tmp_path_factory.mktemp("webui-camera"),
                         SPECTARE_API__PLAYLIST_MAX_S=str(WINDOW_S)) as s:
        await s.wait_for_chunks(CAMERA, 3)
        yield s


async def open_view(browser: Browser, stack: WebStack, viewport: dict, path: str = VIEW, **options) -> Page:
    context = await browser.new_context(viewport=viewport, permissions=["local-network-access"], timezone_id=ZONE,
                                        accept_downloads=True, **options)
    page = await context.new_page()
    await login(page, stack, stack.read, path)
    return page


async def footage_since(stack: WebStack, seconds: float) -> None:
    """Wait until the index holds footage from `seconds` ago on (the test clicks that far back)."""
    async def enough() -> bool:
        chunks = (await stack.footage(CAMERA))["chunks"]
        return bool(chunks) and chunks[0]["start"] <= time.time() - seconds
    await eventually(enough, seconds + 60, what=f"{seconds:.0f} s of {CAMERA}'s footage indexed")


async def live_progress(page: Page) -> tuple[float, int]:
    return tuple(await page.evaluate("""() => {
        const v = document.querySelector("video.live");
        return v ? [v.currentTime, v.getVideoPlaybackQuality().totalVideoFrames] : [0, 0];
    }"""))


async def wait_live_playing(page: Page) -> None:
    async def showing() -> tuple[float, int] | None:
        current, frames = await live_progress(page)
        return (current, frames) if current > 0 and frames > 0 else None
    first = await eventually(showing, 30, what="live video showing frames")

    async def advanced() -> bool:
        now = await live_progress(page)
        return now[0] > first[0] + 1 and now[1] > first[1] + 5
    await eventually(advanced, 30, what="live video advancing (currentTime and decoded frames)")


async def playback(page: Page) -> dict:
    return await page.evaluate("() => window.__spectare && window.__spectare.playback || {}")


async def click_timeline_at(page: Page, t: float, **options) -> float:
    """Click (or tap) the timeline where wall time `t` is drawn; returns the seconds one pixel is there."""
    view = await page.evaluate("() => window.__spectare.timeline")
    assert view["start"] < t < view["end"], (view, t)
    at = {"x": (t - view["start"]) / (view["end"] - view["start"]) * view["width"], "y": 35}  # on the track
    timeline = page.locator(".tl-box")
    if options.get("tap"):
        await timeline.tap(position=at)
    else:
        await timeline.click(position=at)
    return (view["end"] - view["start"]) / view["width"]


async def check_plays_moment(page: Page, target: float, pixel_s: float = 0.0) -> dict:
    """The player was asked for `target` (give or take the `pixel_s` seconds of the pixel clicked), started at
    that moment by hls.js's playingDate, and played on across at least two 2 s chunk seams with playingDate and
    currentTime in step (within one playlist; test_playback_moves_across_windows checks the swaps)."""
    try:
        state = await eventually(lambda: _started(page), 30, what="recorded playback reporting a playing date")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the player: {await playback(page)}") from None
    assert abs(state["asked"] - target) <= max(1.0, pixel_s), state
    assert abs(state["firstPlayingDate"] - state["asked"]) <= 1.0, state
    print(f"moment playing {(state['startedAtMs'] - state['askedAtMs']) / 1000:.2f} s after it was asked for")
    base = state["playingDate"] - state["currentTime"]  # one playlist timeline: a constant offset, seams or not

    async def across_seams() -> dict | None:
        now = await playback(page)
        return now if now["playingDate"] >= state["asked"] + 5 else None
    later = await eventually(across_seams, 60, what="playback 5 s past the clicked moment (two chunk seams)")
    if later["swaps"] == state["swaps"]:  # else it moved on to the next window's playlist: its own timeline
        assert abs((later["playingDate"] - later["currentTime"]) - base) < 0.15, (state, later)
    assert not [e for e in later["errors"] if "fatal=true" in e], later["errors"]
    frames = await page.evaluate("() => document.querySelector('video.recorded.active')"
                                 ".getVideoPlaybackQuality().totalVideoFrames")
    assert frames > (60 if later["swaps"] == state["swaps"] else 0), frames  # 5 s at 15 fps in one element
    return later


async def _started(page: Page) -> dict | None:
    state = await playback(page)
    return state if state.get("firstPlayingDate") and state.get("asked") else None


async def test_live_video_plays(browser: Browser, stack: WebStack):
    page = await open_view(browser, stack, DESKTOP)
    await wait_live_playing(page)
    assert await page.locator(".cv-state").inner_text() == "Live"
    await page.locator(".tl-span").first.wait_for()  # the timeline has drawn the recorded footage
    live = await page.evaluate("() => window.__spectare.live")
    assert live["errors"] == [] and live["streams"] >= 1, live
    await screenshot(page, "camera-live-desktop")
    await page.context.close()


async def test_click_on_timeline_plays_that_moment(browser: Browser, stack: WebStack):
    await footage_since(stack, 40)
    page = await open_view(browser, stack, DESKTOP)
    await page.locator(".tl-span").first.wait_for()
    target = time.time() - 30
    later = await check_plays_moment(page, target, await click_timeline_at(page, target))
    assert (await page.locator(".cv-state").inner_text()).startswith("Playing")

    async def url_follows() -> str | None:
        return page.url if "?t=" in page.url and _url_time(page.url) > later["asked"] + 1 else None
    url = await eventually(url_follows, 30, what="the address following playback")
    assert abs(_url_time(url) - (await playback(page))["playingDate"]) < 10
    await screenshot(page, "camera-playing-desktop")

    await page.get_by_role("button", name="● Live").click()
    await wait_live_playing(page)
    assert "?t=" not in page.url
    await page.context.close()


def _url_time(url: str) -> float:
    return datetime.fromisoformat(url.split("?t=", 1)[1].replace("Z", "+00:00")).timestamp()


async def test_deep_link_opens_playing_its_moment(browser: Browser, stack: WebStack):
    await footage_since(stack, 30)
    target = int(time.time() - 25)
    iso = datetime.fromtimestamp(target, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
    page = await open_view(browser, stack, DESKTOP, f"{VIEW}?t={iso}")
    await check_plays_moment(page, target)
    await page.context.close()


async def test_playback_moves_across_windows(browser: Browser, stack: WebStack):
    """Played from 4 s before a window's end, playback goes on into the next window's playlist (the second video
    element, loaded ahead), with wall times that never go back and never jump: nothing skipped or played twice."""
    boundary = await _boundary_inside_footage(stack)
    iso = datetime.fromtimestamp(boundary - 4, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
    page = await open_view(browser, stack, DESKTOP, f"{VIEW}?t={iso}")
    await eventually(lambda: _started(page), 30, what="recorded playback reporting a playing date")
    dates: list[float] = []

    async def past_boundary() -> dict | None:
        state = await playback(page)
        dates.append(state["playingDate"])
        return state if state["playingDate"] >= boundary + 4 else None
    state = await eventually(past_boundary, 60, what="playback 4 s into the next window")
    assert state["swaps"] >= 1 and len(state["windows"]) >= 2, state
    steps = [b - a for a, b in zip(dates, dates[1:], strict=False)]
    assert min(steps) >= -0.05, f"playback went back in time: {steps}"
    assert max(steps) < 2.0, f"playback jumped (skipped footage) or stalled: {steps}"
    await page.context.close()


async def _boundary_inside_footage(stack: WebStack) -> int:
    """The latest playlist-window boundary with footage from 8 s before it to 14 s after it, once there is one (a
    young stack's first boundary may lie before its first chunk: then the next, waited for)."""
    await footage_since(stack, 1)
    first = (await stack.footage(CAMERA))["chunks"][0]["start"]
    boundary = (int(time.time() - 14) // WINDOW_S) * WINDOW_S
    if boundary - 8 < first:
        boundary = (int(first + 8) // WINDOW_S + 1) * WINDOW_S
    while time.time() < boundary + 14:  # recording goes on meanwhile
        await asyncio.sleep(0.5)
    return boundary


async def test_clip_from_timeline_selection_downloads_and_decodes(browser: Browser, stack: WebStack, tmp_path):
    await footage_since(stack, 45)
    page = await open_view(browser, stack, DESKTOP)
    await page.locator(".tl-span").first.wait_for()
    view = await page.evaluate("() => window.__spectare.timeline")
    box = await page.locator(".tl-box").bounding_box()
    assert box is not None
    now = time.time()
    x_of = lambda t: box["x"] + (t - view["start"]) / (view["end"] - view["start"]) * view["width"]  # noqa: E731
    await page.keyboard.down("Shift")
    await page.mouse.move(x_of(now - 40), box["y"] + 35)
    await page.mouse.down()
    await page.mouse.move(x_of(now - 30), box["y"] + 35, steps=8)
    await page.mouse.up()
    await page.keyboard.up("Shift")
    assert "s)" in await page.locator(".clip-range").inner_text()
    await page.get_by_role("button", name="Export clip").click()
    link = page.locator("a.clip-download")
    await link.wait_for(timeout=60_000)
    async with page.expect_download() as event:
        await link.click()
    download = await event.value
    path = tmp_path / "clip.mp4"
    await download.save_as(path)
    with av.open(str(path)) as clip:
        frames = sum(1 for _ in clip.decode(video=0))
    assert frames >= 8 * 15, frames  # about 10 s at 15 fps, from the keyframe before the start
    await page.context.close()


async def test_phone_viewport_has_no_horizontal_scroll(browser: Browser, stack: WebStack):
    await footage_since(stack, 40)
    page = await open_view(browser, stack, PHONE, has_touch=True, is_mobile=True)
    await wait_live_playing(page)
    await page.locator(".tl-span").first.wait_for()
    widths = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px viewport"
    await screenshot(page, "camera-live-phone")
    target = time.time() - 30
    await check_plays_moment(page, target, await click_timeline_at(page, target, tap=True))
    widths = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths
    await screenshot(page, "camera-playing-phone")
    await page.context.close()


async def test_camera_away_shows_as_a_labelled_gap(browser: Browser, stack: WebStack):
    page = await open_view(browser, stack, DESKTOP)
    await page.locator(".tl-span").first.wait_for()
    stopped = time.time()
    stack.stop_camera(CAMERA)
    try:
        async def gap_open() -> bool:
            gaps = (await stack.footage(CAMERA, stopped - 60))["gaps"]
            return any(g["end"] is None for g in gaps)
        await eventually(gap_open, 60, what="the index recording the camera away")
        while time.time() < stopped + 6:  # the camera stays away ~6 s in all (the gap the test looks for)
            await page.wait_for_timeout(250)
    finally:
        stack.start_camera(CAMERA)

    async def gap_closed() -> dict | None:
        gaps = (await stack.footage(CAMERA, stopped - 60))["gaps"]
        closed = [g for g in gaps if g["end"] is not None and g["end"] > stopped - 10]
        return closed[-1] if closed else None
    gap = await eventually(gap_closed, 60, what="the camera's gap closing once it is back")
    zone = ZoneInfo(ZONE)
    label = (f"camera away {datetime.fromtimestamp(gap['start'], zone):%H:%M:%S} – "
             f"{datetime.fromtimestamp(gap['end'], zone):%H:%M:%S}")
    shown = page.locator(f'.tl-gap[data-gap="{label}"]')
    await shown.wait_for(timeout=30_000)  # the timeline asks again every few seconds near now
    box = await shown.locator("rect").bounding_box()
    assert box is not None
    await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert (await page.locator(".tl-tip").inner_text()).startswith(label)
    await screenshot(page, "camera-gap-desktop")
    await wait_live_playing(page)  # and the live view came back by itself with the camera
    await page.context.close()
