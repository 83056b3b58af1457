"""The web UI's login, live grid, explore, cameras and system views in a real browser (Chromium through Playwright)
against the real stack (`tests/webstack.py`): NATS, S3, ingest, segmenter, indexer and the API serving the built
page (web/dist), recording camera `porch` from an RTSP test camera.

Each test logs in (through the form, or `POST /auth/login` from the page) and drives the page as a person does:
the grid shows the camera's still and its state, a detection published on the bus (its snapshot in S3) shows up in
Explore and opens the camera view at its moment, the camera form adds a camera the CLI then lists and puts the
API's refusal beside the field, and a phone-sized page never scrolls sideways. Every view is saved as a screenshot
at both sizes (`screenshots/` under the run's temporary folder).
"""

import io
import time
from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from spectare.core.sessions import SessionStore
from spectare.core.store import s3_client
from spectare.core.tokens import TokenStore
from spectare.schemas import CameraConfig, Detection, ObjectEvent, event_id
from spectare.schemas.keys import snapshot_key

from .helpers import eventually
from .webstack import DESKTOP, PHONE, WebStack, login, screenshot, web_stack

pytestmark = pytest.mark.integration

CAMERA = "porch"
UI_TIMEOUT_MS = 30_000  # the page's own waits: a loaded machine may be slow to answer /stats


@pytest.fixture(scope="module")
async def stack(nats_server, s3_server, camera_clip, tmp_path_factory):
    async with web_stack(nats_server, s3_server, {CAMERA: camera_clip}, tmp_path_factory.mktemp("webui")) as started:
        await started.wait_for_chunks(CAMERA, 2)
        yield started


async def _context(browser: Browser, viewport: dict) -> BrowserContext:
    return await browser.new_context(viewport=viewport, permissions=["local-network-access"])


@pytest.fixture
async def desktop(browser: Browser) -> Page:
    context = await _context(browser, DESKTOP)
    yield await context.new_page()
    await context.close()


@pytest.fixture
async def phone(browser: Browser) -> Page:
    context = await _context(browser, PHONE)
    yield await context.new_page()
    await context.close()


async def _published_detection(stack: WebStack) -> Detection:
    """A person on `porch` now, as the detector publishes one: its snapshot (the camera's real keyframe as a JPEG)
    in S3 first, then the detection on the bus with the detector's Msg-Id; returned once /search finds it."""
    async with stack.client() as client:
        answer = await client.get(f"/cameras/byname/{CAMERA}/snapshot.jpg")
        assert answer.status_code == 200, answer.text
        jpeg = answer.content
    t = time.time() - 1
    key = snapshot_key(CAMERA, t, "webui", 1)
    s3_client(stack.settings.s3).put_object(stack.settings.s3.bucket, key, io.BytesIO(jpeg), len(jpeg),
                                            content_type="image/jpeg")
    detection = Detection(camera=CAMERA, time=t, label="person", class_id=0, score=0.87, box=(0.2, 0.1, 0.6, 0.9),
                          model="test", session="webui", seq=1, index=0, snapshot_key=key)
    await stack.js.publish(stack.settings.names.detections(CAMERA, "person"), detection.encode(),
                           headers={"Nats-Msg-Id": f"{CAMERA}:webui:1:0"})

    async def indexed() -> bool:
        found = await stack.get("/search", camera=CAMERA, label="person", start="1h")
        return any(abs(i["start"] - t) < 0.01 and i["snapshot_key"] == key for i in found["incidents"])
    await eventually(indexed, 60, what="the detection indexed and found by /search")
    return detection


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(int(unix), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _no_sideways_scroll(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a {PHONE['width']} px phone"


async def test_logging_in_through_the_form(stack, desktop):
    page = desktop
    await page.goto(stack.base_url + "/system")
    await page.wait_for_url("**/login?next=%2Fsystem")  # no session: the page sends the user to log in
    await screenshot(page, "login-desktop")
    token = page.get_by_label("API token")
    assert await token.get_attribute("type") == "password"

    await token.fill("spt_000000000000_notatoken")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_have_text("That token is not valid (revoked or mistyped)")

    await token.fill(stack.admin)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(stack.base_url + "/system")
    await expect(page.locator(".topbar .who")).to_have_text("operator")

    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url("**/login")
    await page.goto(stack.base_url + "/explore")
    await page.wait_for_url("**/login?next=%2Fexplore")


async def test_the_login_link_logs_in_once(stack, desktop):
    page = desktop
    tokens = await TokenStore.open(stack.js, stack.settings)
    token = await tokens.verify(stack.read)
    assert token is not None
    code = await (await SessionStore.open(stack.js, stack.settings, tokens)).create_login_code(token)
    link = f"{stack.base_url}/login#code={code}"  # what `spectare up` prints

    await page.goto(link)
    await page.wait_for_url(stack.base_url + "/")
    await expect(page.locator(".topbar .who")).to_have_text("viewer")
    assert code not in page.url and await page.evaluate("location.hash") == ""

    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url("**/login")
    await page.goto(link)  # used up: the page says so and offers the token field
    await expect(page.get_by_role("alert")).to_contain_text("used or expired login code", timeout=UI_TIMEOUT_MS)
    await expect(page.get_by_label("API token")).to_be_visible()


async def test_the_grid_shows_the_cameras_still_and_state(stack, desktop):
    page = desktop
    await login(page, stack)
    tile = page.locator(f'.tile[data-camera="{CAMERA}"]')
    await expect(tile.locator(".badge-recording")).to_have_text("recording", timeout=UI_TIMEOUT_MS)
    await expect(tile.locator(".badge-detect-off")).to_have_text("detection off")  # the stack's cameras detect=false
    picture = tile.locator("img.still-img")
    await expect(picture).to_have_count(1, timeout=UI_TIMEOUT_MS)
    assert await picture.evaluate("img => img.naturalWidth") == 640
    # The still is refreshed: a new picture (another query string) replaces the first.
    first = await picture.get_attribute("src")
    await page.wait_for_function("""(first) => {
        const img = document.querySelector('.tile img.still-img');
        return img && img.getAttribute('src') !== first && img.naturalWidth > 0;
    }""", arg=first, timeout=UI_TIMEOUT_MS)

    search = page.get_by_label("Filter cameras by name")
    await search.press_sequentially("nothing-like-it")  # key by key: the URL follows and the box keeps its focus
    await expect(search).to_have_value("nothing-like-it")
    await expect(page.get_by_text("No camera matches the filter.")).to_be_visible()
    assert "q=nothing-like-it" in page.url
    await page.get_by_label("Filter cameras by name").fill("")
    await page.get_by_label("Filter cameras by state").select_option("recording")
    await expect(tile).to_be_visible()

    await tile.locator("a").click()
    await page.wait_for_url(f"{stack.base_url}/cameras/{CAMERA}")


async def test_with_many_cameras_only_tiles_on_screen_refresh(stack, desktop):
    page = desktop
    many = [f"bulk-{n:02d}" for n in range(60)]  # before `porch` by name, so porch's tile is far below the fold
    for name in many:
        await stack.registry.put(CameraConfig(name=name, url="rtsp://127.0.0.1:9/none", segment_seconds=2,
                                              detect=False))
    asked: dict[str, int] = {}

    def count(request) -> None:
        if request.url.split("?")[0].endswith("/snapshot.jpg"):
            camera = request.url.split("/cameras/byname/")[1].split("/")[0]
            asked[camera] = asked.get(camera, 0) + 1
    page.on("request", count)
    try:
        await login(page, stack)
        await expect(page.locator(".tile")).to_have_count(61, timeout=UI_TIMEOUT_MS)
        first = page.locator('.tile[data-camera="bulk-00"]')
        await expect(first.locator(".still-note")).to_have_text("no picture", timeout=UI_TIMEOUT_MS)  # a 404
        # Why it does not record, as ingest says it (nothing listens on port 9).
        await expect(first.locator(".tile-error")).to_contain_text("connection refused", timeout=UI_TIMEOUT_MS)
        await eventually(lambda: asked.get("bulk-00", 0) >= 3, 30, what="the first tile asked for its still 3 times")
        assert asked.get(CAMERA, 0) == 0 and asked.get("bulk-59", 0) == 0, asked  # off screen: never asked
        assert await page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
        await screenshot(page, "grid-many-desktop")

        await page.get_by_label("Filter cameras by name").fill(CAMERA)
        await expect(page.locator(".tile")).to_have_count(1)
        await expect(page.locator(".tile img.still-img")).to_have_count(1, timeout=UI_TIMEOUT_MS)
        assert asked.get(CAMERA, 0) >= 1
    finally:
        for name in many:
            await stack.registry.remove(name)


async def test_a_detection_in_explore_opens_the_camera_view_at_its_time(stack, desktop):
    page = desktop
    await login(page, stack)
    await page.wait_for_selector(".feed-live", timeout=UI_TIMEOUT_MS)  # the grid's live feed is connected
    detection = await _published_detection(stack)
    feed_item = page.locator(".feed-item").first
    await expect(feed_item).to_contain_text("person", timeout=UI_TIMEOUT_MS)
    assert await feed_item.get_attribute("href") == f"/cameras/{CAMERA}?t={_iso(detection.time)}"
    await screenshot(page, "grid-desktop")

    await page.get_by_role("link", name="Explore").click()
    row = page.locator(".incident").first
    await expect(row).to_contain_text("person", timeout=UI_TIMEOUT_MS)
    await expect(row).to_contain_text("87 %")
    thumbnail = row.locator("img")
    await expect(thumbnail).to_have_js_property("complete", True, timeout=UI_TIMEOUT_MS)
    assert await thumbnail.evaluate("img => img.naturalWidth") == 640
    await screenshot(page, "explore-desktop")

    # The filters are form fields kept in the URL.
    await page.get_by_label("Label").fill("car")
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_url("**/explore?label=car")
    await expect(page.get_by_text("Nothing found in this range.")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await page.go_back()
    await expect(row).to_contain_text("person", timeout=UI_TIMEOUT_MS)

    await row.click()
    await page.wait_for_url(f"{stack.base_url}/cameras/{CAMERA}?t={_iso(detection.time)}")


async def test_explore_pages_back_with_load_more(stack, desktop):
    page = desktop
    count, now = 55, time.time()  # more than the page's 50 a page, a minute apart (past the merge gap), hours ago
    for n in range(count):
        detection = Detection(camera=CAMERA, time=now - 7200 - 60 * n, label="dog", class_id=16, score=0.5,
                              box=(0.1, 0.1, 0.2, 0.2), model="test", session="paging", seq=n, index=0)
        await stack.js.publish(stack.settings.names.detections(CAMERA, "dog"), detection.encode(),
                               headers={"Nats-Msg-Id": f"{CAMERA}:paging:{n}:0"})

    async def indexed() -> bool:
        return (await stack.get("/search", camera=CAMERA, label="dog", start="4h"))["total"] == count
    await eventually(indexed, 60, what=f"{count} dog incidents indexed")

    await login(page, stack, path=f"/explore?label=dog&start={_iso(now - 4 * 3600)}")
    rows = page.locator(".incident")
    await expect(rows).to_have_count(50, timeout=UI_TIMEOUT_MS)
    await expect(page.locator(".result-count")).to_contain_text(f"50 shown, {count - 50} older")
    await page.get_by_role("button", name="Load more").click()
    await expect(rows).to_have_count(count, timeout=UI_TIMEOUT_MS)
    await expect(page.get_by_role("button", name="Load more")).to_have_count(0)
    times = await rows.locator("time").evaluate_all("els => els.map(e => Date.parse(e.dateTime))")
    assert times == sorted(times, reverse=True) and len(set(times)) == count, times


async def test_adding_a_camera_in_the_form(stack, desktop):
    page = desktop
    await login(page, stack, path="/settings/cameras")
    await page.get_by_role("link", name="Add camera").click()
    await page.get_by_label("Name", exact=True).fill("Front Door")
    await page.get_by_label("Stream URL").fill("rtsp://admin:hunter2@127.0.0.1:9/stream1")
    await page.get_by_role("button", name="Add camera").click()
    name_field = page.locator('.field[data-field="name"]')
    await expect(name_field.locator(".field-error")).to_contain_text("invalid name", timeout=UI_TIMEOUT_MS)
    await screenshot(page, "camera-add-desktop")

    await page.get_by_label("Name", exact=True).fill("driveway")
    await page.get_by_label("Friendly name").fill("Driveway")
    await page.get_by_role("button", name="Add camera").click()
    await expect(page.get_by_role("status")).to_contain_text("Added driveway", timeout=UI_TIMEOUT_MS)
    listed = stack.cli("camera", "list")
    assert listed.returncode == 0 and "driveway" in listed.stdout, listed.stdout + listed.stderr
    row = page.locator("tr", has_text="Driveway")
    await expect(row).to_contain_text("rtsp://admin:***@127.0.0.1:9/stream1")
    assert "hunter2" not in await page.content()

    # Edit: the URL comes back with ***, and saving it keeps the stored password.
    await row.get_by_role("link", name="Driveway").click()
    await page.wait_for_url("**/settings/cameras/driveway")
    url_field = page.get_by_label("Stream URL")
    await expect(url_field).to_have_value("rtsp://admin:***@127.0.0.1:9/stream1")
    await page.get_by_label("Keep footage (days)").fill("3")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved", timeout=UI_TIMEOUT_MS)
    stored = await stack.registry.get("driveway")
    assert stored.url == "rtsp://admin:hunter2@127.0.0.1:9/stream1" and stored.keep_days == 3
    await page.get_by_label("Keep footage (days)").fill("-1")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator('.field[data-field="keep_days"] .field-error')).to_contain_text(
        "greater than 0", timeout=UI_TIMEOUT_MS)
    await screenshot(page, "camera-edit-desktop")

    await page.get_by_role("button", name="Remove camera").click()
    await page.get_by_role("button", name="Yes, remove").click()
    await page.wait_for_url(stack.base_url + "/settings/cameras")
    await expect(page.locator("tr", has_text="Driveway")).to_have_count(0, timeout=UI_TIMEOUT_MS)
    assert "driveway" not in stack.cli("camera", "list").stdout


async def test_a_read_token_sees_the_settings_read_only(stack, desktop):
    page = desktop
    await login(page, stack, stack.read, path=f"/settings/cameras/{CAMERA}")
    await expect(page.get_by_text("these settings are read-only")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await expect(page.get_by_label("Stream URL")).to_have_attribute("readonly", "")
    await expect(page.get_by_role("button", name="Save")).to_have_count(0)
    await expect(page.get_by_role("button", name="Remove camera")).to_have_count(0)


async def test_the_system_view_shows_what_stats_knows(stack, desktop):
    page = desktop
    await login(page, stack, path="/system")
    row = page.locator(f'tr[data-camera="{CAMERA}"]')
    await expect(row.locator(".badge")).to_have_text("recording", timeout=UI_TIMEOUT_MS)
    await expect(page.locator(".health-card.ok")).to_have_count(3, timeout=UI_TIMEOUT_MS)
    fps = float(await row.locator("td").nth(2).inner_text())
    assert 10 <= fps <= 20, fps  # the test camera sends 15 fps
    measured = await page.locator(".measured").inner_text()
    await expect(page.locator(".measured")).not_to_have_text(measured, timeout=UI_TIMEOUT_MS)  # it refreshes itself


@pytest.mark.parametrize("size", ["desktop", "phone"])
async def test_every_view_at_both_sizes(stack, browser, size):
    context = await _context(browser, DESKTOP if size == "desktop" else PHONE)
    page = await context.new_page()
    try:
        await page.goto(stack.base_url + "/login")
        await page.get_by_label("API token").wait_for()
        await screenshot(page, f"login-{size}")
        await login(page, stack)
        await expect(page.locator(".tile img.still-img")).to_have_count(1, timeout=UI_TIMEOUT_MS)
        await expect(page.locator(".tile .badge-recording")).to_be_visible(timeout=UI_TIMEOUT_MS)
        if size == "phone":
            await _no_sideways_scroll(page)
        await screenshot(page, f"grid-{size}")
        views = {"explore": ("/explore", ".result-count"), "cameras": ("/settings/cameras", ".camera-table"),
                 "camera-edit": (f"/settings/cameras/{CAMERA}", ".camera-form"),
                 "camera-add": ("/settings/cameras?add=1", ".camera-form"), "system": ("/system", ".health-card")}
        for name, (path, ready) in views.items():
            await page.goto(stack.base_url + path)
            await page.locator(ready).first.wait_for(timeout=UI_TIMEOUT_MS)
            if size == "phone":
                await _no_sideways_scroll(page)
            await screenshot(page, f"{name}-{size}")
    finally:
        await context.close()


async def test_a_tracked_object_in_explore_says_it_is_parked_in_its_zone_and_the_zone_filter_finds_it(stack, desktop):
    page, now = desktop, time.time()
    base = dict(camera=CAMERA, object_id="parked-1", label="car", first_seen=now - 300, top_score=0.82,
                box=(0.4, 0.5, 0.6, 0.8), session="events", keyframe_seq=1)
    for seq, event in enumerate([
        ObjectEvent(type="new", seq=0, time=now - 298, last_seen=now - 298, zones=("drive",),
                    entered_zones=("drive",), **base),
        ObjectEvent(type="update", seq=1, time=now - 240, last_seen=now - 240, zones=("drive",),
                    entered_zones=("drive",), stationary=True, changes=("stationary",), **base),
    ]):
        await stack.js.publish(stack.settings.names.events(CAMERA, "car"), event.encode(),
                               headers={"Nats-Msg-Id": event_id(CAMERA, "parked-1", seq)})

    async def indexed() -> bool:
        found = await stack.get("/search", camera=CAMERA, kind="events", start="1h")
        return any(e["object_id"] == "parked-1" and e["stationary"] for e in found["events"])
    await eventually(indexed, 60, what="the parked car's events indexed")

    await login(page, stack, path=f"/explore?start={_iso(now - 3600)}")
    row = page.locator(".incident", has_text="tracked")
    await expect(row).to_contain_text("car", timeout=UI_TIMEOUT_MS)
    await expect(row).to_contain_text("tracked, stationary, in view · zones drive")
    await page.get_by_label("Zone").fill("porch_steps")
    await page.get_by_role("button", name="Search").click()
    await expect(page.get_by_text("Nothing found in this range.")).to_be_visible(timeout=UI_TIMEOUT_MS)
    await page.get_by_label("Zone").fill("drive")
    await page.get_by_role("button", name="Search").click()
    await page.wait_for_url("**zone=drive")
    await expect(page.locator(".incident")).to_have_count(1, timeout=UI_TIMEOUT_MS)
    await expect(page.locator(".incident")).to_contain_text("zones drive")
    # Its camera view marks it on the timeline (tracked objects are marked like incidents).
    await page.locator(".incident").click()
    await expect(page.locator(".tl-mark[data-label=car]").first).to_be_attached(timeout=UI_TIMEOUT_MS)
