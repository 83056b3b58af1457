"""Audio recorded with the video: RTP audio depacketizing (RFC 3640 AAC, G.711), the ingest's ordering of audio
around keyframes, G.711 -> AAC transcoding, and end to end with real cameras (the GStreamer test camera with AAC,
the scripted camera with G.711 and with garbage on its audio channel) through ingest, the segmenter and clips."""

import asyncio
import logging
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.audio import AudioPath, TimedAudio
from services.ingest.interleave import TrackMerger
from services.ingest.media import AudioInfo, AudioUnits
from services.ingest.rtp import Depacketizer, InterleavedReader
from services.ingest.rtpaudio import AacDepacketizer, UnsupportedAudio, aac_config, rtp_audio
from services.ingest.rtsp import RtspSource
from services.ingest.sdp import parse
from services.ingest.timing import TimedPacket
from spectare.core.registry import CameraRegistry
from spectare.core.store import s3_client
from spectare.local.testcam import RtspTestCamera, _ffmpeg
from spectare.media.clips import ChunkFile, export_clip
from spectare.schemas import CameraConfig

from .helpers import eventually
from .rtp_packets import aac_hbr, interleave, tone
from .rtsp_camera import ScriptedRtspCamera
from .test_recording import Pipeline, segments_of

FPS = 15
FRAME = 1 / FPS
HBR = {"mode": "AAC-hbr", "sizelength": "13", "indexlength": "3", "indexdeltalength": "3", "config": "1408"}


# -- RFC 3640 and G.711 depacketizing (pure) ---------------------------------------------------------------

def _push(depacketizer, payloads: list[tuple[bytes, int, bool]]) -> None:
    for seq, (payload, ts, marker) in enumerate(payloads):
        depacketizer.push(memoryview(payload), ts, marker, seq)


def _hbr(*units: bytes, sizes: list[int] | None = None, deltas: list[int] | None = None) -> bytes:
    sizes = sizes or [len(u) for u in units]
    headers = b"".join(((s << 3) | ((deltas or [0] * len(sizes))[i] & 7)).to_bytes(2, "big")
                       for i, s in enumerate(sizes))
    return (16 * len(sizes)).to_bytes(2, "big") + headers + b"".join(units)


@pytest.mark.parametrize(("payloads", "units", "bad"), [
    ([(_hbr(b"abc"), 1000, True)], [(0, b"abc")], 0),
    ([(_hbr(b"abc", b"de", b"f"), 1000, True)], [(0, b"abc"), (1024, b"de"), (2048, b"f")], 0),
    ([(_hbr(b"ab", b"cd", deltas=[0, 1]), 1000, True)], [(0, b"ab"), (2048, b"cd")], 0),  # index delta 1: skip one
    ([(_hbr(b"abc"), 1000, True), (_hbr(b"xy"), 2024, True)], [(0, b"abc"), (1024, b"xy")], 0),
    # one AU in three fragments: each packet's header gives the whole AU's size
    ([(_hbr(b"aaaa", sizes=[10]), 5, False), (_hbr(b"bbbb", sizes=[10]), 5, False), (_hbr(b"cc", sizes=[10]), 5, True)],
     [(0, b"aaaabbbbcc")], 0),
    ([(b"\x00\x10\x01", 7, True), (_hbr(b"ok"), 1031, True)], [(1024, b"ok")], 1),  # truncated AU header
    ([(b"\x00", 7, True)], [], 1),  # no AU-headers-length
    ([(_hbr(b"ab", b"c", sizes=[2, 5]), 7, True)], [], 1),  # sizes past the payload's end
    ([(b"\x00\x00abc", 7, True)], [], 1),  # zero-length AU-headers section
])
def test_aac_hbr_payloads_give_their_access_units(payloads, units, bad):
    depacketizer = AacDepacketizer(aac_config({k.lower(): v for k, v in HBR.items()}))
    _push(depacketizer, payloads)
    assert _units(depacketizer.pending) == units
    assert depacketizer.stats.bad_payloads == bad


def _units(runs) -> list[tuple[int, bytes]]:
    """(timestamp, data) of each unit of the depacketizer's runs."""
    return [(run.timestamp + n * run.duration, data) for run in runs for n, data in enumerate(run.units)]


def test_units_read_together_travel_as_runs_broken_where_time_jumps():
    depacketizer = AacDepacketizer(aac_config({k.lower(): v for k, v in HBR.items()}))
    # a sample late (a camera's RTP clock rounding) still follows on; a jump of more than 1/16 unit starts a new run
    _push(depacketizer, [(_hbr(b"a"), 0, True), (_hbr(b"b", b"c"), 1024, True), (_hbr(b"d"), 9000, True),
                         (_hbr(b"e"), 10025, True), (_hbr(b"f"), 11047, True), (_hbr(b"g"), 12200, True)])
    assert [(r.timestamp, r.duration, r.units) for r in depacketizer.pending] == [
        (0, 1024, [b"a", b"b", b"c"]), (9000, 1024, [b"d", b"e", b"f"]), (12200, 1024, [b"g"])]


@given(st.binary(max_size=40))
def test_the_two_byte_hbr_header_reader_agrees_with_the_bit_reader(payload):
    """AAC-hbr's usual layout is read two bytes at a time; any payload must give what the general reader gives."""
    config = aac_config({k.lower(): v for k, v in HBR.items()})
    fast, general = AacDepacketizer(config), AacDepacketizer(config)
    general._hbr_plain = False  # the field-by-field reader every other layout takes
    assert fast._hbr_plain

    def outcome(depacketizer):
        try:
            return depacketizer._headers(memoryview(payload))
        except ValueError:
            return "bad"

    assert outcome(fast) == outcome(general)


def test_a_fragmented_access_unit_missing_a_piece_is_dropped_and_counted():
    depacketizer = AacDepacketizer(aac_config({k.lower(): v for k, v in HBR.items()}))
    for seq, (payload, marker) in enumerate(aac_hbr([bytes(range(200)) * 15], mtu=1000)):
        if seq != 1:
            depacketizer.push(memoryview(payload), 0, marker, seq)
    depacketizer.push(memoryview(_hbr(b"next")), 1024, True, 3)
    assert [data for _, data in _units(depacketizer.pending)] == [b"next"]
    assert (depacketizer.stats.lost_packets, depacketizer.stats.dropped_units) == (1, 1)


def test_real_aac_through_the_packetizer_and_the_interleaved_reader():
    units, asc = tone("aac", 16000, 1.0)
    media = parse(f"v=0\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/16000/1\r\na=fmtp:97 streamtype=5; "
                  f"mode=AAC-hbr; config={asc.hex()}; SizeLength=13; IndexLength=3; IndexDeltaLength=3\r\n").media[0]
    audio = rtp_audio(media)
    assert (audio.codec, audio.sample_rate, audio.channels, audio.extradata) == ("aac", 16000, 1, asc)
    reader = InterleavedReader(0, Depacketizer("h264"), 96, audio_channel=2, audio=audio.depacketizer,
                               audio_payload_type=97)
    stream = b"".join(interleave([(p, (0xFFFFFC00 + i * 1024) & 0xFFFFFFFF, m, i)], 97, 2) for i, u in enumerate(units)
                      for p, m in aac_hbr([u]))
    for at in range(0, len(stream), 333):  # split anywhere
        reader.feed(stream[at:at + 333])
    assert _units(audio.depacketizer.pending) == [(i * 1024, u) for i, u in enumerate(units)], "past the wrap"
    reader.feed(interleave([(units[0], 7, True, len(units))], 96, 2))  # the video's payload type, on audio's channel
    assert audio.depacketizer.stats.wrong_payload_type == 1


@pytest.mark.parametrize(("sdp_audio", "expected"), [
    ("m=audio 0 RTP/AVP 0\r\n", ("pcm_mulaw", 8000, 1)),
    ("m=audio 0 RTP/AVP 8\r\n", ("pcm_alaw", 8000, 1)),
    ("m=audio 0 RTP/AVP 101\r\na=rtpmap:101 PCMA/8000\r\n", ("pcm_alaw", 8000, 1)),
    ("m=audio 0 RTP/AVP 96\r\na=rtpmap:96 PCMU/16000/2\r\n", ("pcm_mulaw", 16000, 2)),
    ("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 mpeg4-generic/44100/2\r\na=fmtp:97 mode=AAC-hbr;sizelength=13;"
     "indexlength=3;indexdeltalength=3;config=1210\r\n", ("aac", 44100, 2)),
    ("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MP4A-LATM/44100\r\n", "AAC in LATM"),
    ("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\n", "audio codec opus"),
    ("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 mpeg4-generic/8000\r\na=fmtp:97 mode=CELP-cbr;config=1588\r\n",
     "mode 'celp-cbr'"),
    ("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 mpeg4-generic/8000\r\na=fmtp:97 mode=AAC-hbr\r\n", "AudioSpecificConfig"),
])
def test_sdp_audio_sections_this_client_records_or_names(sdp_audio, expected):
    media = parse("v=0\r\n" + sdp_audio).media[0]
    if isinstance(expected, str):
        with pytest.raises(UnsupportedAudio, match=expected):
            rtp_audio(media)
        return
    audio = rtp_audio(media)
    assert (audio.codec, audio.sample_rate, audio.channels) == expected


# -- ordering around keyframes (pure) -------------------------------------------------------------------------

def _video(wall: float, key: bool = False) -> TimedPacket:
    return TimedPacket(round(wall * 90000), round(wall * 90000), 6000, key, b"v", wall)


def _audio(wall: float, units: int = 1):
    """A run of `units` units of 0.01 s from `wall`."""
    return TimedAudio(round(wall * 48000), 480, (b"a",) * units, wall, 48000)


def _order(merged) -> list[str]:
    """Each packet released: v/K<wall> for video, a<wall of each unit> for an audio run (a0.1+0.11: one run)."""
    return [f"{'K' if m.video.keyframe else 'v'}{m.video.wall_time:g}" if m.video else
            "a" + "+".join(f"{m.audio.wall_at(n):.3g}" for n in range(len(m.audio.units))) for m in merged]


@pytest.mark.parametrize(("arrivals", "order"), [
    # audio late: the keyframe at 1.0 waits until audio has reached 1.0; audio from 0.99 (straddling) goes before
    # (a1.01 then waits for the video to reach it)
    ([("v", 0.9), ("K", 1.0), ("a", 0.97), ("a", 0.99), ("a", 1.01)], ["v0.9", "a0.97", "a0.99", "K1"]),
    # audio early: audio past the keyframe's time waits for the keyframe
    ([("a", 0.95), ("a", 1.0), ("a", 1.02), ("v", 0.95), ("K", 1.0), ("v", 1.05)],
     ["a0.95", "v0.95", "K1", "a1", "a1.02", "v1.05"]),
    # the audio stops: the keyframe goes after max_wait_s (0.5) of video
    ([("a", 0.5), ("K", 1.0), ("v", 1.2), ("v", 1.5)], ["a0.5", "K1", "v1.2", "v1.5"]),
    # the video stops: audio goes after max_wait_s of audio
    ([("v", 0.1), ("a", 0.2), ("a", 0.5), ("a", 0.75)], ["v0.1", "a0.2"]),
    # a run across a keyframe is split at it: the units before go first, the rest after it
    ([("v", 0.95), ("K", 1.0), ("a3", 0.98), ("v", 1.05)], ["v0.95", "a0.98+0.99", "K1", "a1", "v1.05"]),
    # a run the video has only partly reached: the units it has reached go, the rest waits for it
    ([("v", 0.9), ("a3", 0.9), ("v", 0.95)], ["v0.9", "a0.9", "a0.91+0.92", "v0.95"]),
])
def test_audio_falls_on_its_side_of_every_keyframe(arrivals, order):
    merger = TrackMerger(max_wait_s=0.5)
    out = []
    for kind, wall in arrivals:
        if kind.startswith("a"):
            out += merger.audio([_audio(wall, int(kind[1:] or 1))])
        else:
            out += merger.video([_video(wall, kind == "K")])
    assert _order(out) == order
    rest = _order(merger.drain())
    units = [u for item in _order(out) + rest for u in (item[1:].split("+") if item[0] == "a" else [item])]
    assert sorted(units) == sorted(
        f"{k}{w:g}" if k in "vK" else f"{w + n / 100:.3g}" for k, w in arrivals for n in range(int(k[1:] or 1)
                                                                                             if k[0] == "a" else 1))


# -- G.711 -> AAC (PyAV) ---------------------------------------------------------------------------------------

def test_g711_is_transcoded_to_continuous_aac_with_holes_filled():
    (g711,), _ = tone("pcm_mulaw", 8000, 3.0)
    info = AudioInfo("pcm_mulaw", 8000, 1, Fraction(1, 8000), b"", shared_timeline=False)
    path = AudioPath(info)
    assert path.track.codec == "aac" and path.track.time_base == (1, 8000) and len(path.track.extradata) >= 2
    runs = []
    for at in range(0, len(g711) - 160, 160):
        if at // 160 in (30, 31):  # two packets lost: 40 ms of silence keeps later audio at its time
            continue
        runs += path.push(AudioUnits(5000 + at, 160, (g711[at:at + 160],), 100.0), None)
    out = [(run.pts + n * run.duration, run.wall_at(n), data) for run in runs for n, data in enumerate(run.units)]
    assert all(run.duration == 1024 for run in runs)
    assert [pts for pts, _, _ in out] == [out[0][0] + i * 1024 for i in range(len(out))], "no hole, no overlap"
    assert out[0][1] == pytest.approx(100.0 + out[0][0] / 8000 - 5000 / 8000)
    assert len(out) >= (len(g711) - 2 * 1024) // 1024
    decoder = av.CodecContext.create("aac", "r")
    decoder.extradata = path.track.extradata
    samples = sum(f.samples for _, _, data in out for f in decoder.decode(av.Packet(data)))
    assert samples >= (len(out) - 2) * 1024


# -- end to end -------------------------------------------------------------------------------------------------

def decode_errors(path: Path) -> tuple[int, str]:
    result = subprocess.run([_ffmpeg(), "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, text=True, timeout=120)
    return result.returncode, result.stderr


def check_chunk(path: Path, audio_frame: float) -> tuple[float, float]:
    """Both tracks, no decode error, audio and video starting within one frame and ending within one audio frame
    and one video frame of each other; returns the (video, audio) durations."""
    assert decode_errors(path) == (0, ""), path.name
    with av.open(str(path)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"], path.name
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        times = {video: [], audio: []}
        for packet in container.demux():
            if packet.size and packet.pts is not None:
                times[packet.stream].append((float(packet.pts * packet.time_base),
                                             float(packet.duration * packet.time_base)))
    v, a = times[video], times[audio]
    assert abs(v[0][0] - a[0][0]) <= FRAME, f"{path.name}: audio starts at {a[0][0]}, video at {v[0][0]}"
    v_end, a_end = max(t + d for t, d in v), a[-1][0] + a[-1][1]
    assert abs(v_end - a_end) <= FRAME + audio_frame, f"{path.name}: audio ends at {a_end}, video at {v_end}"
    return v_end - v[0][0], a_end - a[0][0]


def audio_gaps(path: Path) -> list[float]:
    """Seconds between each audio packet's end and the next one's start (negative: overlap)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        packets = [p for p in container.demux(stream) if p.size]
    return [float((b.pts - a.pts - a.duration) * stream.time_base) for a, b in zip(packets, packets[1:], strict=False)]


async def record(js, settings, pipeline, name: str, url: str, chunks: int, tmp_path: Path) -> list[ChunkFile]:
    registry = await CameraRegistry.open(js, settings)
    await registry.add(CameraConfig(name=name, url=url, segment_seconds=4, detect=False))
    pipeline.start("ingest")
    pipeline.start("segmenter")

    async def enough():
        found = await segments_of(js, settings, name)
        return found if len(found) >= chunks else None

    segments = await eventually(enough, 120, what=f"{chunks} chunks of {name}")
    client = s3_client(settings.s3)
    files = []
    for i, segment in enumerate(sorted(segments, key=lambda s: s.start)[:chunks]):
        path = tmp_path / f"{name}-{i}.mp4"
        path.write_bytes(client.get_object(settings.s3.bucket, segment.key).read())
        files.append(ChunkFile(path, segment.start, segment.end))
    return files


def check_recording(files: list[ChunkFile], audio_frame: float, tmp_path: Path) -> None:
    for chunk in files:
        video_s, audio_s = check_chunk(chunk.path, audio_frame)
        assert video_s == pytest.approx(chunk.end - chunk.start, abs=FRAME)
        assert max(audio_gaps(chunk.path)) <= audio_frame / 2 and min(audio_gaps(chunk.path)) >= -audio_frame / 2
    for a, b in zip(files, files[1:], strict=False):
        assert b.start == pytest.approx(a.end, abs=FRAME), "chunks back to back"
    # a clip across the seams of the chunks, from mid-first to mid-last
    clip = export_clip(files, files[0].start + 1.5, files[-1].end - 1.5, tmp_path / "clip.mp4")
    assert clip.chunks == len(files)
    video_s, audio_s = check_chunk(clip.path, audio_frame)
    gaps = audio_gaps(clip.path)
    assert max(gaps) <= audio_frame and min(gaps) >= -audio_frame, "the clip's audio is continuous at the seams"
    assert audio_s == pytest.approx(video_s, abs=FRAME + audio_frame)


@pytest.fixture
def pipeline(settings, tmp_path):
    p = Pipeline(settings, tmp_path)
    yield p
    p.stop_all()


@pytest.fixture
def aac_camera(camera_clip, tmp_path):
    camera = RtspTestCamera({"cam1": camera_clip}, tmp_path / "testcam.log", audio="aac")
    camera.start()
    yield camera
    camera.stop()


async def test_aac_camera_records_chunks_and_clips_with_audio(js, settings, aac_camera, pipeline, tmp_path):
    files = await record(js, settings, pipeline, "aaccam", aac_camera.url("cam1"), 3, tmp_path)
    check_recording(files, 1024 / 48000, tmp_path)


@pytest.mark.integration  # the scripted camera is a real RTSP server on loopback
async def test_g711_camera_records_aac_audio_through_garbage(js, settings, pipeline, tmp_path, camera_clip):
    units = _clip_units(camera_clip, 45)
    camera = await ScriptedRtspCamera("h264", units, FPS, audio="pcmu", audio_garbage=True).start()
    try:
        files = await record(js, settings, pipeline, "g711cam", camera.url(), 3, tmp_path)
    finally:
        await camera.stop()
    check_recording(files, 1024 / 8000, tmp_path)


@pytest.mark.integration
async def test_audio_garbage_is_counted_logged_once_and_the_video_goes_on(camera_clip, caplog):
    units = _clip_units(camera_clip, 30)
    camera = await ScriptedRtspCamera("h264", units, FPS, audio="aac", audio_garbage=True).start()
    caplog.set_level(logging.WARNING, logger="services.ingest.rtsp")
    try:
        source = await RtspSource.open(camera.url(), 10, 10, 0.05)
        try:
            assert source.info.audio is not None and source.info.audio.codec == "aac"
            video = audio = 0
            while video < 3 * FPS:  # 3 s
                packet = await asyncio.wait_for(source.next(), 10)
                audio, video = ((audio + len(packet.units), video) if isinstance(packet, AudioUnits)
                                 else (audio, video + 1))
            losses = source.losses()
        finally:
            await source.close()
    finally:
        await camera.stop()
    assert audio >= 2.5 * 16000 / 1024 * (1 - 1 / 7 - 1 / 11), "the good audio packets keep coming"
    assert losses["audio_bad_payloads"] >= 3 and losses["audio_wrong_payload_type"] >= 5
    assert losses["rtp_packets_lost"] == losses["nal_units_dropped"] == 0, "the video lost nothing"
    said = [r for r in caplog.records if "unreadable audio" in r.getMessage()]
    assert len(said) == 1, "logged once"


def _clip_units(clip: Path, count: int) -> list[bytes]:
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        bsf = av.BitStreamFilterContext("h264_mp4toannexb", stream)
        out = []
        for packet in container.demux(stream):
            for filtered in bsf.filter(packet) if packet.size else []:
                out.append(bytes(filtered))
            if len(out) >= count:
                return out
    return out
