"""Recorded footage with its audio over HLS (`vod.m3u8`), against the real stack recording an RTSP test camera that
sends AAC in 2 s chunks: hls.js in Chromium plays the playlist across the chunks' seams with sound (decoded audio
growing in every chunk, no hls.js error, the picture on the wall clock), and FFmpeg's HLS demuxer decodes both
streams without an error, the audio continuous across the seams: the segments' `tfdt` retime
(services/api/retime.py) moves the audio track's fragments with the video's."""

import subprocess

import av
import pytest
from playwright.async_api import Page

from spectare.local.testcam import _ffmpeg

from .browser import check_playback, hls_player_html, open_test_page, playlist_entries, timeline
from .helpers import eventually
from .webstack import WebStack, login, web_stack

pytestmark = pytest.mark.integration

CAMERA = "aachls"
CHUNKS = 4
AAC_FRAME_S = 1024 / 48000


@pytest.fixture(scope="module")
async def stack(nats_server, s3_server, camera_clip, tmp_path_factory):
    async with web_stack(nats_server, s3_server, {CAMERA: camera_clip}, tmp_path_factory.mktemp("hls-audio"),
                         audio="aac") as stack:
        chunks = await stack.wait_for_chunks(CAMERA, CHUNKS, timeout=90)
        stack.chunks = chunks[:CHUNKS]  # type: ignore[attr-defined]
        yield stack


def playlist_path(stack: WebStack) -> str:
    chunks = stack.chunks  # type: ignore[attr-defined]
    return f"/cameras/byname/{CAMERA}/vod.m3u8?start={chunks[0]['start']!r}&end={chunks[-1]['end']!r}"


async def playlist(stack: WebStack) -> str:
    async with stack.client(stack.read) as client:
        answer = await client.get(playlist_path(stack))
    assert answer.status_code == 200, answer.text
    return answer.text


async def test_ffmpeg_decodes_the_playlist_with_both_streams_and_continuous_audio(stack):
    entries = playlist_entries(await playlist(stack))
    assert len(entries) == CHUNKS and not any(e.discontinuity for e in entries)
    url, headers = stack.base_url + playlist_path(stack), f"Authorization: Bearer {stack.read}\r\n"
    done = subprocess.run([_ffmpeg(), "-nostdin", "-v", "error", "-headers", headers, "-i", url, "-map", "0:v",
                           "-map", "0:a", "-f", "null", "-"], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")

    with av.open(url, options={"headers": headers}) as container:
        assert sorted(s.type for s in container.streams) == ["audio", "video"]
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        times: dict[str, list[tuple[float, float]]] = {"video": [], "audio": []}
        decoded = {"video": 0, "audio": 0}
        for packet in container.demux(video, audio):
            if packet.size and packet.pts is not None:
                times[packet.stream.type].append((float(packet.pts * packet.time_base),
                                                  float(packet.duration * packet.time_base)))
                decoded[packet.stream.type] += len(packet.decode())
    length = sum(e.duration for e in entries)
    assert decoded["video"] >= (length - 0.2) * 15, (decoded, length)  # every chunk's frames, first GOPs too
    sound = sorted(times["audio"])
    gaps = [b[0] - a[0] - a[1] for a, b in zip(sound, sound[1:], strict=False)]
    assert max(gaps) <= AAC_FRAME_S and min(gaps) >= -AAC_FRAME_S, "audio continuous across the seams"
    assert sound[-1][0] + sound[-1][1] - sound[0][0] == pytest.approx(length, abs=0.1 + AAC_FRAME_S)
    picture = sorted(times["video"])
    assert abs(sound[0][0] - picture[0][0]) <= 1 / 15, "the sound starts with the picture"


async def _audio_state(page: Page) -> dict:
    return await page.evaluate("""() => { const v = document.getElementById('video');
        return {time: v.currentTime, audio: v.webkitAudioDecodedByteCount, errors: player.errors,
                samples: player.samples}; }""")


async def test_hls_js_plays_the_playlist_across_the_seams_with_sound(stack, page):
    text = await playlist(stack)
    segments = timeline(playlist_entries(text))
    await login(page, stack, stack.read, "/")
    await open_test_page(page, stack.base_url, "vod-audio", hls_player_html(playlist_path(stack),
                                                                            {"startPosition": 0}))
    heard: list[tuple[float, int]] = []  # (currentTime, decoded audio bytes) through playback

    async def near_the_end() -> bool:
        state = await _audio_state(page)
        heard.append((state["time"], state["audio"]))
        return state["time"] > segments[-1].media_start + 1.0

    last = segments[-1]
    await eventually(near_the_end, 3 * (last.media_start + last.duration) + 30, what="playback of the last chunk",
                     interval=0.2)
    state = await _audio_state(page)
    assert state["errors"] == [], state["errors"]
    check_playback(state["samples"], segments)
    # Audio was decoded on through every chunk, so past every seam, not just once at the start.
    latest = []
    for n, segment in enumerate(segments):
        inside = [b for t, b in heard if segment.media_start <= t < segment.media_start + segment.duration]
        assert inside, f"playback never sampled in segment {n}"
        latest.append(inside[-1])
    assert latest[0] > 0 and all(a < b for a, b in zip(latest, latest[1:], strict=False)), latest
