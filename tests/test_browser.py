"""The browser test kit proves itself: a page on the real API's origin (the API running against real NATS
and S3) loads hls.js and plays an HLS playlist of self-contained fMP4 segments cut by ffmpeg from the test
footage, across a seam and a gap, with `hls.playingDate` on the wall clock the playlist gives."""

import datetime
from pathlib import Path

import pytest

from spectare.core.bus import connect, ensure_topology
from spectare.core.store import ensure_bucket
from spectare.local.process import free_port

from .browser import Segment, check_playback, fmp4_segments, hls_player_html, open_test_page, serve
from .helpers import ServiceProcess, api_answering, eventually, settings_for

pytestmark = pytest.mark.integration

SEGMENT_S = 2.0
GAP_S = 7.0  # between the second segment and the third, marked by EXT-X-DISCONTINUITY
WALL_START = datetime.datetime(2026, 11, 27, 6, 10, 54, 694000, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
async def api(nats_server, s3_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser-api")
    settings = settings_for(nats_server, s3_server, root / "state")
    ensure_bucket(settings.s3)
    nc = await connect(settings, "test-browser")
    await ensure_topology(nc.jetstream(), settings)
    port = free_port()
    process = ServiceProcess("api", settings, root / "api.log", SPECTARE_API__PORT=str(port)).start()
    try:
        base_url = f"http://127.0.0.1:{port}"
        await api_answering(process, base_url)
        yield base_url
    finally:
        process.stop()
        await nc.close()


def playlist(segments: list[Segment], names: list[str]) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{round(SEGMENT_S)}", "#EXT-X-PLAYLIST-TYPE:VOD",
             "#EXT-X-MEDIA-SEQUENCE:0"]
    for n, (segment, name) in enumerate(zip(segments, names, strict=True)):
        if n and segment.wall_start > segments[n - 1].wall_start + segments[n - 1].duration + 0.001:
            lines.append("#EXT-X-DISCONTINUITY")
        when = datetime.datetime.fromtimestamp(segment.wall_start, datetime.UTC)
        lines += [f"#EXT-X-PROGRAM-DATE-TIME:{when.isoformat(timespec='milliseconds').replace('+00:00', 'Z')}",
                  f"#EXTINF:{segment.duration:.3f},", name]
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


async def test_hls_js_plays_fmp4_segments_across_a_seam_and_a_gap_on_the_api_origin(api, page, camera_clip,
                                                                                   tmp_path):
    files = fmp4_segments(camera_clip, tmp_path / "segments", SEGMENT_S, 3)
    t0 = WALL_START.timestamp()
    segments = [Segment(0.0, t0, SEGMENT_S), Segment(SEGMENT_S, t0 + SEGMENT_S, SEGMENT_S),
                Segment(2 * SEGMENT_S, t0 + 2 * SEGMENT_S + GAP_S, SEGMENT_S)]
    for path in files:
        await serve(page, f"{api}/__test/hls/{path.name}", path.read_bytes(), "video/mp4")
    await serve(page, f"{api}/__test/hls/index.m3u8", playlist(segments, [p.name for p in files]),
                "application/vnd.apple.mpegurl")

    url = await open_test_page(page, api, "player", hls_player_html("/__test/hls/index.m3u8"))
    # The page is on the API's origin: its requests that are not routed reach the real server.
    assert await page.evaluate("location.origin") == api and url.startswith(api)
    assert await page.evaluate("fetch('/healthz').then(r => r.json())") == {"status": "ok"}
    assert await page.evaluate("player.supported") is True

    async def near_the_end() -> bool:
        return await page.evaluate("document.getElementById('video').currentTime") > 3 * SEGMENT_S - 0.5

    await eventually(near_the_end, 60, what="playback reaching the third segment")
    await page.screenshot(path=tmp_path / "playing.png")
    player = await page.evaluate("({errors: player.errors, samples: player.samples,"
                                 " width: document.getElementById('video').videoWidth,"
                                 " error: document.getElementById('video').error})")
    assert player["errors"] == [] and player["error"] is None
    assert player["width"] == 640
    check_playback(player["samples"], segments)
    assert Path(tmp_path / "playing.png").stat().st_size > 1000
