"""Live video with its audio (`WS /cameras/byname/{name}/live`): the live muxer's init with a video and an AAC track,
fragments with a `traf` per track on one wall-time anchor, the hub's cutting of groups at keyframes; then against the
real stack recording an RTSP test camera that sends AAC: the WebSocket's stream decodes (PyAV) with continuous audio
in step with the picture, and the product's live player (web/src/components/LivePlayer.tsx) plays both in Chromium.
"""

import io
from fractions import Fraction

import av
import pytest
from playwright.async_api import Browser

from spectare.api.livehub import runs_from_keyframes
from spectare.media.fmp4 import boxes, children
from spectare.media.fragments import LiveMuxer, aac_codec_string
from spectare.schemas import AudioTrack, Packet

from .helpers import eventually
from .live_client import AUDIO_TRACK, VIDEO_TRACK, samples, timescale, watch
from .rtp_packets import tone
from .test_fragments import ANCHOR, Encoded, encode
from .webstack import DESKTOP, WebStack, login, web_stack

RATE = 16000
AAC_FRAME = 1024


# -- the muxer (PyAV on real x264 and AAC) ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Encoded:
    return encode(tmp_path_factory.mktemp("live-audio"), "h264", "h264", frames=45)


def with_audio(encoded: Encoded, offset_s: float, seconds: float = 3.5) -> tuple[AudioTrack, list[Packet]]:
    """An AAC tone starting `offset_s` after the video's first frame, and the session's packets as ingest publishes
    them: one seq space, audio before each keyframe whose wall time is before it, each keyframe alone, then groups
    of up to 6 packets (returned flat; `groups` cuts them)."""
    units, config = tone("aac", RATE, seconds)
    track = AudioTrack(codec="aac", sample_rate=RATE, channels=1, time_base=(1, RATE), extradata=config)
    audio = [Packet(camera="cam1", session="s1", seq=0, track="audio", pts=5000 + i * AAC_FRAME,
                    dts=5000 + i * AAC_FRAME, duration=AAC_FRAME, keyframe=False,
                    wall_time=ANCHOR + offset_s + i * AAC_FRAME / RATE, data=unit) for i, unit in enumerate(units)]
    merged: list[Packet] = []
    for video in encoded.packets:  # video in decode order; audio goes before the frame whose time it is before
        while audio and audio[0].wall_time < video.wall_time:
            merged.append(audio.pop(0))
        merged.append(video)
    merged += audio
    return track, [p.model_copy(update={"seq": seq}) for seq, p in enumerate(merged)]


def groups(packets: list[Packet], size: int = 6) -> list[tuple[Packet, ...]]:
    out: list[list[Packet]] = []
    for packet in packets:
        key = packet.track == "video" and packet.keyframe
        if key or not out or (out[-1][0].track == "video" and out[-1][0].keyframe) or len(out[-1]) >= size:
            out.append([])
        out[-1].append(packet)
    return [tuple(g) for g in out]


def tracks_of(init: bytes) -> list[str]:
    moov = next(b for b in boxes(init) if b.type == "moov")
    out = []
    for trak in (b for b in children(init, moov) if b.type == "trak"):
        mdia = next(b for b in children(init, trak) if b.type == "mdia")
        hdlr = next(b for b in children(init, mdia) if b.type == "hdlr")
        out.append(init[hdlr.body.start + 8:hdlr.body.start + 12].decode())
    return out


def decode_both(data: bytes) -> tuple[list[av.VideoFrame], list[av.AudioFrame]]:
    with av.open(io.BytesIO(data)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
        video, audio = [], []
        for packet in container.demux():
            frames = packet.decode()
            (video if packet.stream.type == "video" else audio).extend(frames)
    return video, audio


def test_init_has_both_tracks_and_fragments_decode_to_the_picture_and_continuous_sound_on_one_clock(clip):
    track, packets = with_audio(clip, 0.013)
    info = clip.info.model_copy(update={"audio": track})
    first_key = next(i for i, p in enumerate(packets) if p.track == "video" and p.keyframe)
    muxer = LiveMuxer(info, packets[first_key])
    fragments = [muxer.fragment(run) for g in groups(packets[first_key:]) for run in runs_from_keyframes(g)]

    assert tracks_of(muxer.init) == ["vide", "soun"]
    assert muxer.mime == f'video/mp4; codecs="{muxer.codec_string},mp4a.40.2"'
    assert timescale(muxer.init, AUDIO_TRACK) == RATE
    video, audio = decode_both(muxer.init + b"".join(f.data for f in fragments))
    kept = [p for p in packets[first_key:] if p.track == "audio"]
    assert len(video) == len(clip.packets) and len(audio) >= len(kept) - 2  # the decoder's priming frames
    with av.open(io.BytesIO(muxer.init)) as container:
        sound = container.streams.audio[0]
        assert (sound.codec_context.name, sound.sample_rate, sound.channels) == ("aac", RATE, 1)
        assert bytes(sound.codec_context.extradata) == track.extradata
    # The audio's samples follow each other with no hole and no overlap, and sound and picture are on one clock:
    # media time t is wall_time + t for both.
    times = [s.decode for f in fragments for s in samples(f.data, AUDIO_TRACK)]
    assert times == [times[0] + i * AAC_FRAME for i in range(len(kept))]
    assert [muxer.wall_time + t / RATE for t in times] == pytest.approx([p.wall_time for p in kept], abs=1e-4)
    shown = sorted(clip.packets, key=lambda p: p.pts)
    assert [muxer.wall_time + float(f.time) for f in video] == pytest.approx([p.wall_time for p in shown], abs=1e-4)
    # Bookkeeping for the hub: video frames counted, keyframe fragments where a keyframe starts them.
    assert sum(f.frames for f in fragments) == len(clip.packets)
    assert sum(len(f.audio_wall_times) for f in fragments) == len(kept)
    assert [f.keyframe for f in fragments] == [g[0].track == "video" and g[0].keyframe
                                               for g in groups(packets[first_key:])]
    both = [f for f in fragments if samples(f.data, VIDEO_TRACK) and samples(f.data, AUDIO_TRACK)]
    assert len(both) >= len(fragments) // 2, "groups of both tracks are one moof with two trafs"


def test_audio_from_before_the_stream_start_or_going_back_is_left_out_and_counted(clip):
    track, packets = with_audio(clip, -0.3)  # the tone starts before the picture
    info = clip.info.model_copy(update={"audio": track})
    keyframe = next(p for p in packets if p.track == "video" and p.keyframe)
    muxer = LiveMuxer(info, keyframe)
    early = [p for p in packets if p.track == "audio" and p.wall_time < muxer.wall_time][-3:]
    later = [p for p in packets if p.track == "audio" and p.wall_time >= muxer.wall_time][:3]
    first = muxer.fragment((keyframe, *early, *later))
    assert first.audio_dropped == 3 and first.audio_wall_times == tuple(p.wall_time for p in later)
    again = muxer.fragment((later[1], later[2]))  # already sent: it would go back in time
    assert again.audio_dropped == 2 and again.data == b""
    assert samples(first.data, AUDIO_TRACK)[0].decode == round((later[0].wall_time - muxer.wall_time) * RATE)


def test_a_camera_without_usable_audio_streams_its_video_as_before(clip):
    plain = LiveMuxer(clip.info, clip.packets[0])
    assert tracks_of(plain.init) == ["vide"] and plain.audio is None and plain.audio_left_out is None
    assert plain.mime == f'video/mp4; codecs="{plain.codec_string}"'
    odd = clip.info.model_copy(update={"audio": AudioTrack(codec="pcm_mulaw", sample_rate=8000, channels=1,
                                                           time_base=(1, 8000))})
    muxer = LiveMuxer(odd, clip.packets[0])
    assert muxer.init == plain.init and muxer.mime == plain.mime
    assert muxer.audio_left_out == "audio codec 'pcm_mulaw' cannot be streamed live (supported: aac)"


@pytest.mark.parametrize(("config", "expected"), [
    (bytes.fromhex("1408"), "mp4a.40.2"),  # AAC-LC 16 kHz mono
    (bytes.fromhex("1190"), "mp4a.40.2"),  # AAC-LC 48 kHz stereo
    (bytes.fromhex("2b92"), "mp4a.40.5"),  # HE-AAC (SBR)
    (bytes.fromhex("eb09"), "mp4a.40.29"),  # HE-AACv2 (PS)
    (bytes.fromhex("f8e0"), "mp4a.40.39"),  # escaped object type: 32 + 7 (ER AAC ELD)
])
def test_aac_codec_string_from_the_audio_specific_config(config, expected):
    assert aac_codec_string(config) == expected


def _p(seq: int, track: str = "video", key: bool = False) -> Packet:
    return Packet(camera="c", session="s", seq=seq, track=track, pts=seq, dts=seq, keyframe=key, wall_time=float(seq),
                  data=b"x")


@pytest.mark.parametrize(("group", "runs"), [
    ("K", ["K"]),
    ("vav", ["vav"]),
    ("aaK", ["aa", "K"]),
    ("aKvaKa", ["a", "Kva", "Ka"]),
])
def test_groups_are_cut_before_each_video_keyframe(group, runs):
    packets = tuple(_p(i, "audio" if c == "a" else "video", c == "K") for i, c in enumerate(group))
    label = {("video", True): "K", ("video", False): "v", ("audio", False): "a"}
    assert ["".join(label[(p.track, p.keyframe)] for p in run) for run in runs_from_keyframes(packets)] == runs


# -- end to end: an AAC camera through ingest and the API ------------------------------------------------------

CAMERA = "aaccam"


@pytest.fixture(scope="module")
async def stack(nats_server, s3_server, camera_clip, tmp_path_factory):
    async with web_stack(nats_server, s3_server, {CAMERA: camera_clip}, tmp_path_factory.mktemp("live-audio"),
                         audio="aac") as stack:
        await stack.wait_for_chunks(CAMERA, 1)
        yield stack


def live_url(stack: WebStack) -> str:
    return f"ws://{stack.base_url.split('//', 1)[1]}/cameras/byname/{CAMERA}/live"


async def test_the_websocket_streams_video_and_aac_audio_that_decode_in_step(stack):
    got = await watch(live_url(stack), 8, stack.read)
    (stream, init, fragments), = got.streams()
    assert stream["mime"].startswith('video/mp4; codecs="avc1.64') and stream["mime"].endswith(',mp4a.40.2"')
    assert stream["audio"] == {"codec": "aac", "sample_rate": 48000, "channels": 1}
    assert tracks_of(init) == ["vide", "soun"]
    video, audio = decode_both(init + b"".join(data for _, data in fragments))
    assert len(video) >= 5 * 15 and len(audio) >= 5 * 48000 / AAC_FRAME
    gaps = [b.pts - a.pts - a.samples for a, b in zip(audio, audio[1:], strict=False)]
    assert gaps == [0] * len(gaps), ("continuous audio", [a.pts for a in audio][:80])

    # In step: each fragment's audio lies where its video does on the shared clock (a group is <= 0.2 s live).
    scales = {track: timescale(init, track) for track in (VIDEO_TRACK, AUDIO_TRACK)}
    both = 0
    for _, data in fragments:
        picture, sound = samples(data, VIDEO_TRACK), samples(data, AUDIO_TRACK)
        if picture and sound:
            both += 1
            assert abs(sound[0].decode / scales[AUDIO_TRACK] - picture[0].presented / scales[VIDEO_TRACK]) < 0.5
    assert both >= len(fragments) // 3
    # The stream starts at the feed's current GOP, whose decode time need not be 0: the sound starts with it.
    first_picture = samples(fragments[0][1], VIDEO_TRACK)[0]
    first_audio = next(samples(d, AUDIO_TRACK) for _, d in fragments if samples(d, AUDIO_TRACK))[0]
    assert first_picture.keyframe
    assert abs(Fraction(first_audio.decode, scales[AUDIO_TRACK])
               - Fraction(first_picture.presented, scales[VIDEO_TRACK])) < 0.5, "the sound starts with the picture"


async def test_the_product_live_player_plays_the_picture_and_its_sound_in_chromium(browser: Browser, stack):
    context = await browser.new_context(viewport=DESKTOP, permissions=["local-network-access"])
    page = await context.new_page()
    await login(page, stack, stack.read, f"/cameras/{CAMERA}")

    async def progress() -> dict:
        return await page.evaluate("""() => {
            const v = document.querySelector("video.live");
            return v ? {time: v.currentTime, frames: v.getVideoPlaybackQuality().totalVideoFrames,
                        audio: v.webkitAudioDecodedByteCount, live: window.__spectare.live} : {};
        }""")

    async def sounding() -> dict | None:
        now = await progress()
        return now if now.get("audio", 0) > 0 and now["frames"] > 0 and now["time"] > 0 else None

    first = await eventually(sounding, 30, what="live video and audio decoded")

    async def advancing() -> dict | None:
        now = await progress()
        return now if (now["audio"] > first["audio"] and now["frames"] > first["frames"] + 5
                       and now["time"] > first["time"] + 1) else None

    later = await eventually(advancing, 30, what="live video and audio decoding on")
    assert later["live"]["errors"] == [] and later["live"]["streams"] >= 1, later["live"]
    await context.close()
