"""The camera view's sound end to end: Chromium (Playwright) on the page the API serves, against the real stack
recording `aaccam`, an RTSP test camera sending H.264 and an AAC tone, and `quiet`, one with no audio track
(tests/webstack.py, 2 s chunks, one-minute playback windows).

Sound is checked where a listener would hear it: a WebAudio AnalyserNode on the <video> element (fed through
`createMediaElementSource`, it hears what the element plays, so nothing while muted) besides the decoder's
`webkitAudioDecodedByteCount` going up. Live starts muted; the speaker button unmutes it; the choice (and the
volume) holds into playback, follows the picture when playback moves to the next window's <video> (the hidden one
stays muted), and survives a reload. A browser that refuses sound before a click (Chrome's default autoplay
policy) plays the picture muted rather than standing still, and the button then gives sound. A camera with no audio
shows no button. Screenshots of the controls live and playing go to the run's screenshots folder.
"""

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, Playwright

from spectare.local.testcam import RtspTestCamera
from spectare.schemas import CameraConfig

from .browser import CHROMIUM, CHROMIUM_ARGS
from .helpers import eventually
from .test_webui_camera import click_timeline_at, wait_live_playing
from .webstack import DESKTOP, WebStack, login, screenshot, web_stack

pytestmark = pytest.mark.integration

CAMERA, QUIET = "aaccam", "quiet"
ZONE = "Europe/Berlin"
WINDOW_S = 60
LIVE, SHOWN, HIDDEN = "video.live", "video.recorded.active", "video.recorded:not(.active)"
HEARD = 1e-3  # RMS of what the element plays: the test tone is far above it, a muted element gives exactly 0
SOUND_KEY = "spectare.sound"


@pytest.fixture(scope="module")
async def stack(nats_server, s3_server, camera_clip, tmp_path_factory):
    root = tmp_path_factory.mktemp("webui-audio")
    async with web_stack(nats_server, s3_server, {CAMERA: camera_clip}, root, audio="aac",
                         SPECTARE_API__PLAYLIST_MAX_S=str(WINDOW_S)) as s:
        # a second camera without an audio track, recorded by the same stack (web_stack stops it with the others)
        s.cameras[QUIET] = RtspTestCamera({QUIET: camera_clip}, root / f"camera-{QUIET}.log").start()
        await s.registry.put(CameraConfig(name=QUIET, url=s.cameras[QUIET].url(QUIET), segment_seconds=2))
        await s.wait_for_chunks(CAMERA, 1)
        await s.wait_for_chunks(QUIET, 1)
        yield s


async def open_view(browser: Browser, stack: WebStack, camera: str = CAMERA, query: str = "") -> Page:
    context = await browser.new_context(viewport=DESKTOP, permissions=["local-network-access"], timezone_id=ZONE)
    page = await context.new_page()
    await login(page, stack, stack.read, f"/cameras/{camera}{query}")
    return page


async def footage_since(stack: WebStack, camera: str, seconds: float) -> None:
    async def enough() -> bool:
        chunks = (await stack.footage(camera))["chunks"]
        return bool(chunks) and chunks[0]["start"] <= time.time() - seconds
    await eventually(enough, seconds + 60, what=f"{seconds:.0f} s of {camera}'s footage indexed")


async def element(page: Page, selector: str) -> dict:
    """The element's sound settings and progress: muted, volume, audio bytes decoded, currentTime."""
    return await page.evaluate("""(selector) => {
        const v = document.querySelector(selector);
        return v ? {muted: v.muted, volume: v.volume, decoded: v.webkitAudioDecodedByteCount, time: v.currentTime,
                    paused: v.paused} : null;
    }""", selector)


async def listen(page: Page, selector: str) -> None:
    """An AnalyserNode on each element matching `selector` (once per element; its sound then goes through it)."""
    state = await page.evaluate("""async (selector) => {
        const ears = window.__ears ??= {context: new AudioContext(), of: new WeakMap()};
        for (const video of document.querySelectorAll(selector)) {
            if (ears.of.has(video)) continue;
            const analyser = ears.context.createAnalyser();
            analyser.fftSize = 2048;
            ears.context.createMediaElementSource(video).connect(analyser);
            analyser.connect(ears.context.destination);
            ears.of.set(video, analyser);
        }
        await ears.context.resume();
        return ears.context.state;
    }""", selector)
    assert state == "running", state


async def level(page: Page, selector: str) -> float:
    """RMS of the last 2048 samples the element played (through `listen`'s analyser)."""
    return await page.evaluate("""(selector) => {
        const analyser = window.__ears.of.get(document.querySelector(selector));
        const samples = new Float32Array(analyser.fftSize);
        analyser.getFloatTimeDomainData(samples);
        return Math.sqrt(samples.reduce((sum, x) => sum + x * x, 0) / samples.length);
    }""", selector)


async def sounding(page: Page, selector: str, what: str) -> dict:
    """The element is unmuted, decoding audio on, and what it plays is heard."""
    first = await element(page, selector)
    assert first is not None and not first["muted"], first

    async def heard() -> dict | None:
        now = await element(page, selector)
        loud = await level(page, selector)
        return now if now["decoded"] > first["decoded"] and loud > HEARD and not now["muted"] else None
    return await eventually(heard, 30, what=f"{what}: sound decoded and heard")


async def silent(page: Page, selector: str, seconds: float = 1.5) -> None:
    """What the element plays falls to zero (the analyser still holds the last few ms played before a mute) and
    stays there for `seconds`, although the element decodes audio on."""
    before = await element(page, selector)
    await eventually(lambda: _quiet(page, selector), 5, interval=0.05, what="a muted element falling silent")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert await level(page, selector) == 0, "a muted element was heard"
        await page.wait_for_timeout(100)
    after = await element(page, selector)
    assert after["muted"] and after["decoded"] > before["decoded"], (before, after)


async def _quiet(page: Page, selector: str) -> bool:
    return await level(page, selector) == 0


def speaker(page: Page, name: str):
    return page.locator(".cv-sound").get_by_role("button", name=name, exact=True)


async def stored(page: Page) -> dict | None:
    return await page.evaluate("(key) => JSON.parse(localStorage.getItem(key))", SOUND_KEY)


async def playback(page: Page) -> dict:
    return await page.evaluate("() => window.__spectare && window.__spectare.playback || {}")


async def started_playing(page: Page) -> dict:
    async def started() -> dict | None:
        state = await playback(page)
        return state if state.get("firstPlayingDate") else None
    return await eventually(started, 30, what="recorded playback reporting a playing date")


async def test_unmuted_live_stays_unmuted_in_playback_after_a_reload_and_back_live(browser: Browser, stack: WebStack):
    await footage_since(stack, CAMERA, 40)
    page = await open_view(browser, stack)
    await wait_live_playing(page)
    await speaker(page, "Unmute").wait_for()  # the stream message said the camera has sound
    await listen(page, LIVE)
    await silent(page, LIVE)  # muted by default: decoding, nothing heard
    await screenshot(page, "camera-sound-muted-desktop")

    await speaker(page, "Unmute").click()
    await speaker(page, "Mute").wait_for()
    await sounding(page, LIVE, "live after unmute")
    assert await stored(page) == {"muted": False, "volume": 1}
    await screenshot(page, "camera-sound-live-desktop")

    await page.get_by_label("Volume").fill("0.5")
    await eventually(lambda: _volume_is(page, LIVE, 0.5), 10, what="the live element at half volume")
    assert await stored(page) == {"muted": False, "volume": 0.5}

    target = time.time() - 30
    await click_timeline_at(page, target)
    await started_playing(page)
    await speaker(page, "Mute").wait_for()  # the recorded chunks have sound too (hls.js's BUFFER_CODECS)
    assert (await playback(page))["hasSound"] is True
    await listen(page, "video.recorded")
    shown = await sounding(page, SHOWN, "playback")
    assert shown["volume"] == pytest.approx(0.5), shown
    assert (await element(page, HIDDEN))["muted"], "the hidden element must stay muted"
    await screenshot(page, "camera-sound-playing-desktop")

    await page.reload()  # the address is the moment playing: the reloaded page plays it again
    await started_playing(page)
    await speaker(page, "Mute").wait_for()  # remembered: unmuted, and this browser lets it play with sound
    assert await stored(page) == {"muted": False, "volume": 0.5}
    await listen(page, "video.recorded")
    again = await sounding(page, SHOWN, "playback after a reload")
    assert again["volume"] == pytest.approx(0.5), again

    await page.get_by_role("button", name="● Live").click()  # and back to live, still with sound
    await wait_live_playing(page)
    await listen(page, LIVE)
    live = await sounding(page, LIVE, "live again")
    assert live["volume"] == pytest.approx(0.5), live

    await speaker(page, "Mute").click()
    await speaker(page, "Unmute").wait_for()
    await silent(page, LIVE)
    assert await stored(page) == {"muted": True, "volume": 0.5}
    await page.context.close()


async def _volume_is(page: Page, selector: str, volume: float) -> bool:
    now = await element(page, selector)
    return now is not None and abs(now["volume"] - volume) < 1e-6


async def test_the_sound_follows_the_picture_into_the_next_windows_element(browser: Browser, stack: WebStack):
    """Played from 4 s before a window's end, with sound chosen: the next window loads muted in the hidden element,
    and once it is swapped in, it is the one heard while the old one is muted."""
    boundary = (int(time.time() - 14) // WINDOW_S) * WINDOW_S
    await footage_since(stack, CAMERA, time.time() - boundary + 8)
    boundary = (int(time.time() - 14) // WINDOW_S) * WINDOW_S
    iso = datetime.fromtimestamp(boundary - 4, ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")
    page = await open_view(browser, stack)
    await page.evaluate("([key, value]) => localStorage.setItem(key, value)", [SOUND_KEY, '{"muted":false,"volume":1}'])
    await page.goto(f"{stack.base_url}/cameras/{CAMERA}?t={iso}")
    await page.locator("video.recorded").first.wait_for(state="attached")
    await listen(page, "video.recorded")
    await started_playing(page)
    first = await page.evaluate("() => document.querySelector('video.recorded.active') === "
                                "document.querySelectorAll('video.recorded')[0]")
    await sounding(page, SHOWN, "the first window")

    hidden_states: list[bool] = []

    async def swapped() -> dict | None:
        hidden = await element(page, HIDDEN)
        hidden_states.append(hidden["muted"])
        state = await playback(page)
        return state if state["swaps"] >= 1 and state["playingDate"] >= boundary + 2 else None
    await eventually(swapped, 60, interval=0.1, what="playback 2 s into the next window")
    assert all(hidden_states), "the hidden element (the next window loading) sounded"
    now_first = await page.evaluate("() => document.querySelector('video.recorded.active') === "
                                    "document.querySelectorAll('video.recorded')[0]")
    assert now_first != first, "the other element is the one shown now"
    await sounding(page, SHOWN, "the next window")
    assert (await element(page, HIDDEN))["muted"]
    await speaker(page, "Mute").wait_for()
    await page.context.close()


async def test_a_browser_that_refuses_sound_before_a_click_plays_muted_and_the_button_gives_sound(
        playwright: Playwright, stack: WebStack):
    """Chrome's default: no sound before the user has clicked on the page. The remembered choice is sound, so the
    player tries it, is refused, and plays muted (the picture goes on); the button shows muted, and one click gives
    sound. Playwright runs every evaluate and locator query as a user gesture, so the page is left alone (logged in
    by the context's request client, the choice stored by an init script) until the live fragments have come."""
    args = [a for a in CHROMIUM_ARGS if not a.startswith("--autoplay-policy")]
    strict = await playwright.chromium.launch(executable_path=CHROMIUM,
                                              args=[*args, "--autoplay-policy=document-user-activation-required"])
    try:
        context = await strict.new_context(viewport=DESKTOP, permissions=["local-network-access"])
        answer = await context.request.post(f"{stack.base_url}/auth/login", data={"token": stack.read})
        assert answer.status == 200, await answer.text()
        await context.add_init_script(f"localStorage.setItem({SOUND_KEY!r}, '{{\"muted\":false,\"volume\":1}}')")
        page = await context.new_page()
        fragments: list[float] = []
        page.on("websocket", lambda socket: socket.on(
            "framereceived", lambda frame: isinstance(frame, bytes) and fragments.append(time.monotonic())))
        await page.goto(f"{stack.base_url}/cameras/{CAMERA}")
        await eventually(lambda: len(fragments) >= 45, 60, what="3 s of live fragments received by the page")
        await page.wait_for_timeout(500)  # untouched a little longer: the player has appended them and asked to play

        await wait_live_playing(page)  # playing, muted, rather than waiting for a click
        assert (await element(page, LIVE))["muted"]
        await speaker(page, "Unmute").wait_for()
        assert "click for sound" in (await speaker(page, "Unmute").get_attribute("title") or "")
        assert await stored(page) == {"muted": False, "volume": 1}, "a refusal is not the viewer's choice"

        await speaker(page, "Unmute").click()
        await speaker(page, "Mute").wait_for()
        await listen(page, LIVE)
        await sounding(page, LIVE, "live after the click")
        await context.close()
    finally:
        await strict.close()


async def test_a_camera_without_audio_has_no_sound_controls(browser: Browser, stack: WebStack):
    await footage_since(stack, QUIET, 40)
    page = await open_view(browser, stack, QUIET)
    await wait_live_playing(page)
    live = await page.evaluate("() => window.__spectare.live")
    assert live["streams"] >= 1 and live["audio"] is None, live
    assert await page.locator(".cv-sound").count() == 0
    assert (await element(page, LIVE))["decoded"] == 0

    await click_timeline_at(page, time.time() - 30)
    await started_playing(page)
    await eventually(lambda: _has_sound_known(page), 30, what="the recorded player knowing the footage's tracks")
    assert (await playback(page))["hasSound"] is False
    assert await page.locator(".cv-sound").count() == 0
    await screenshot(page, "camera-no-sound-playing-desktop")
    await page.context.close()


async def _has_sound_known(page: Page) -> bool:
    return (await playback(page)).get("hasSound") is not None
