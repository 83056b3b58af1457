"""Live fragments (`spectare.media.fragments`) on real x264 and x265 output: init + fragments decode with PyAV to
the very frames the encoder made, and the codec strings agree with what ffprobe says of the same streams."""

import hashlib
import io
import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import pytest
from av.bitstream import BitStreamFilterContext

from spectare.media.fmp4 import boxes
from spectare.media.fragments import LiveMuxer, LiveMuxError, codec_string, length_prefixed, split_annexb
from spectare.schemas import Packet, StreamInfo, VideoTrack

from .media import source_video

ANCHOR = 1_800_000_000.5
PARAMETER_SETS = {"h264": (7, 8), "hevc": (32, 33, 34)}


@dataclass(frozen=True)
class Encoded:
    codec: str
    path: Path  # the encoder's MP4
    info: StreamInfo
    packets: tuple[Packet, ...]  # as ingest publishes them: Annex-B, decode order, wall time from pts


def encode(tmp: Path, name: str, codec: str, *args: str, frames: int = 45, size: str = "320x180") -> Encoded:
    """`frames` of the demo footage through libx264/libx265 into an MP4, then demuxed the way ingest hands packets
    on: Annex-B access units, extradata = the parameter sets in Annex-B."""
    path = tmp / f"{name}.mp4"
    encoder = ["-c:v", "libx265", "-x265-params", "log-level=error"] if codec == "hevc" else ["-c:v", "libx264"]
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source_video()), "-frames:v", str(frames),
                    "-vf", f"scale={size}", "-r", "15", "-g", "15", *encoder, *args, str(path)],
                   check=True, timeout=120)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        bsf = BitStreamFilterContext(f"{codec}_mp4toannexb", stream)
        raw = [p for packet in container.demux(stream) if packet.size for p in bsf.filter(packet)]
        ctx = stream.codec_context
        width, height = ctx.width, ctx.height
    first = bytes(raw[0])
    extradata = b"".join(b"\x00\x00\x00\x01" + nal for nal in split_annexb(first)
                         if _nal_type(codec, nal) in PARAMETER_SETS[codec])
    info = StreamInfo(camera="cam1", session="s1", started_at=ANCHOR,
                      video=VideoTrack(codec=codec, width=width, height=height,
                                       time_base=(tb.numerator, tb.denominator), extradata=extradata, fps=15.0))
    origin = raw[0].pts
    packets = tuple(Packet(camera="cam1", session="s1", seq=i, pts=p.pts, dts=p.dts, duration=p.duration,
                           keyframe=bool(p.is_keyframe), wall_time=ANCHOR + float((p.pts - origin) * tb),
                           data=bytes(p)) for i, p in enumerate(raw))
    return Encoded(codec, path, info, packets)


def _nal_type(codec: str, nal: bytes) -> int:
    return (nal[0] >> 1) & 0x3F if codec == "hevc" else nal[0] & 0x1F


def decoded(data: bytes) -> list[tuple[float, str]]:
    """(presentation time in seconds, picture digest) of every frame the MP4 bytes decode to, in display order."""
    with av.open(io.BytesIO(data)) as container:
        return [(float(f.time), hashlib.sha256(f.to_ndarray(format="yuv420p").tobytes()).hexdigest())
                for f in container.decode(video=0)]


def ffprobe(path: Path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                          "stream=profile,level,codec_tag_string", "-of", "json", str(path)],
                         check=True, capture_output=True, timeout=60).stdout
    return json.loads(out)["streams"][0]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Encoded]:
    tmp = tmp_path_factory.mktemp("live")
    return {
        "h264-high": encode(tmp, "h264-high", "h264", "-bf", "0"),
        "h264-bframes": encode(tmp, "h264-bframes", "h264", "-bf", "2"),
        "h264-baseline": encode(tmp, "h264-baseline", "h264", "-profile:v", "baseline"),
        "h264-main-720p": encode(tmp, "h264-main-720p", "h264", "-profile:v", "main", frames=16, size="1280x720"),
        "hevc-main": encode(tmp, "hevc-main", "hevc", "-bf", "0"),
        "hevc-main10": encode(tmp, "hevc-main10", "hevc", "-pix_fmt", "yuv420p10le", frames=16, size="640x360"),
    }


# -- codec strings ----------------------------------------------------------------------------------

# Profile names as ffprobe prints them -> the H.264 profile_idc and the constraint flags x264 sets for them.
H264_PROFILES = {"High": "6400", "Main": "4d40", "Constrained Baseline": "42c0"}
# ffprobe's HEVC profile -> profile_idc and compatibility flags (bit-reversed hex); x265 marks its output
# progressive and frame-only (constraint byte 0x90).
HEVC_PROFILES = {"Main": "1.6", "Main 10": "2.4"}


@pytest.mark.parametrize("clip", ["h264-high", "h264-bframes", "h264-baseline", "h264-main-720p", "hevc-main",
                                  "hevc-main10"])
def test_codec_string_agrees_with_ffprobe_from_the_sps_and_from_the_config_record(clips, clip):
    encoded = clips[clip]
    probed = ffprobe(encoded.path)
    if encoded.codec == "h264":
        expected = f"avc1.{H264_PROFILES[probed['profile']]}{probed['level']:02x}"
    else:
        expected = f"hvc1.{HEVC_PROFILES[probed['profile']]}.L{probed['level']}.90"
    assert codec_string(encoded.codec, encoded.info.video.extradata) == expected
    assert codec_string(encoded.codec, encoded.packets[0].data) == expected  # in-band, from the keyframe
    with av.open(str(encoded.path)) as container:  # the MP4's avcC / hvcC record
        assert codec_string(encoded.codec, bytes(container.streams.video[0].codec_context.extradata)) == expected


def escaped(rbsp: bytes) -> bytes:
    """A NAL payload with emulation prevention bytes, as an encoder writes it (00 00 0x -> 00 00 03 0x, x <= 3)."""
    out, zeros = bytearray(), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def hevc_sps(space: int, tier: int, profile: int, compatibility: int, constraints: bytes, level: int) -> bytes:
    """The start of an H.265 SPS up to its profile_tier_level's general level (VPS 0, one sub-layer, nested)."""
    ptl = bytes([space << 6 | tier << 5 | profile]) + compatibility.to_bytes(4, "big") + constraints + bytes([level])
    return b"\x00\x00\x00\x01\x42\x01" + escaped(b"\x01" + ptl + b"\xa0")


@pytest.mark.parametrize(("codec", "data", "expected"), [
    ("h264", bytes.fromhex("000000016742c01e95a0"), "avc1.42c01e"),  # constrained baseline 3.0
    ("h264", bytes.fromhex("0000000167640028acd9"), "avc1.640028"),  # high 4.0
    # Main (compatible with Main and Main 10), level 3.1, progressive + non-packed + frame-only: Apple's example.
    ("hevc", hevc_sps(0, 0, 1, 0x60000000, bytes([0xB0, 0, 0, 0, 0, 0]), 93), "hvc1.1.6.L93.B0"),
    # Profile space 1, high tier, Main 10, no constraint flags: trailing zero bytes are left out.
    ("hevc", hevc_sps(1, 1, 2, 0x20000000, bytes(6), 153), "hvc1.A2.4.H153"),
    # No compatibility flags: the SPS holds 00 00 03 00 there (emulation prevention), read as zeros.
    ("hevc", hevc_sps(0, 0, 1, 0, bytes([0x90, 0, 0, 0, 0, 0x01]), 90), "hvc1.1.0.L90.90.0.0.0.0.1"),
])
def test_codec_string_of_known_parameter_sets(codec, data, expected):
    if codec == "hevc" and expected.endswith(".1"):
        assert b"\x00\x00\x03" in data  # the case is what it claims to be
    assert codec_string(codec, data) == expected


@pytest.mark.parametrize(("codec", "data", "error"), [
    ("vp8", b"\x00\x00\x01\x67\x64\x00\x1e", "no codec string for 'vp8'"),
    ("h264", b"\x00\x00\x01\x68\xeb\xe3\xcb", "no h264 SPS"),  # a PPS only
    ("hevc", b"\x00\x00\x01\x42\x01\x01\x01", "too short"),
])
def test_codec_string_refuses_what_it_cannot_read(codec, data, error):
    with pytest.raises(LiveMuxError, match=error):
        codec_string(codec, data)


# -- fragments ----------------------------------------------------------------------------------------

def groups_as_ingest_sends(packets: tuple[Packet, ...], size: int) -> list[tuple[Packet, ...]]:
    """Packets in runs as ingest groups them: each keyframe alone, then up to `size` packets per group."""
    runs: list[list[Packet]] = []
    for packet in packets:
        if packet.keyframe or not runs or runs[-1][0].keyframe or len(runs[-1]) >= size:
            runs.append([])
        runs[-1].append(packet)
    return [tuple(run) for run in runs]


@pytest.mark.parametrize("clip", ["h264-high", "h264-bframes", "h264-baseline", "hevc-main", "hevc-main10"])
@pytest.mark.parametrize("group", [1, 4, 15])
def test_init_and_fragments_decode_to_the_encoders_frames(clips, clip, group):
    encoded = clips[clip]
    muxer = LiveMuxer(encoded.info, encoded.packets[0])
    fragments = [muxer.fragment(run) for run in groups_as_ingest_sends(encoded.packets, group)]
    stream = muxer.init + b"".join(f.data for f in fragments)

    assert [b.type for b in boxes(muxer.init)] == ["ftyp", "moov"]
    assert all([b.type for b in boxes(f.data)] == ["moof", "mdat"] for f in fragments)
    with av.open(str(encoded.path)) as container:
        source = [(float(f.time), hashlib.sha256(f.to_ndarray(format="yuv420p").tobytes()).hexdigest())
                  for f in container.decode(video=0)]
    got = decoded(stream)
    assert [digest for _, digest in got] == [digest for _, digest in source]  # same pictures, same order
    # The timeline starts at the first packet's decode time, and media time t was captured at wall_time + t: so
    # every frame, shown in display order, lands on its own packet's wall time.
    shown = sorted(encoded.packets, key=lambda p: p.pts)
    assert [muxer.wall_time + t for t, _ in got] == pytest.approx([p.wall_time for p in shown], abs=1e-4)
    tb = Fraction(*encoded.info.video.time_base)
    assert got[0][0] == pytest.approx(float((shown[0].pts - encoded.packets[0].dts) * tb), abs=1e-4)
    assert all(a[0] < b[0] for a, b in zip(got, got[1:], strict=False))

    # Bookkeeping a hub relies on: whole frames, keyframes where a viewer may start, capture times.
    assert sum(f.frames for f in fragments) == len(encoded.packets)
    assert [f.keyframe for f in fragments] == [run[0].keyframe for run in groups_as_ingest_sends(encoded.packets,
                                                                                                group)]
    assert [w for f in fragments for w in f.wall_times] == [p.wall_time for p in encoded.packets]
    with av.open(io.BytesIO(muxer.init)) as container:
        tag = container.streams.video[0].codec_tag
    assert tag == ("avc1" if encoded.codec == "h264" else "hvc1")
    assert muxer.mime == f'video/mp4; codecs="{codec_string(encoded.codec, encoded.info.video.extradata)}"'


def test_a_later_keyframe_starts_a_stream_mid_session(clips):
    """A viewer who joins mid-session: a muxer built from a later keyframe decodes from there, on its own timeline."""
    encoded = clips["h264-high"]
    keyframes = [i for i, p in enumerate(encoded.packets) if p.keyframe]
    start = keyframes[1]
    later = encoded.packets[start:]
    muxer = LiveMuxer(encoded.info, later[0])
    stream = muxer.init + b"".join(muxer.fragment(run).data for run in groups_as_ingest_sends(later, 5))
    frames = decoded(stream)
    assert len(frames) == len(later) and frames[0][0] == pytest.approx(0)
    assert muxer.wall_time == pytest.approx(later[0].wall_time)


def test_a_stream_without_extradata_takes_its_parameter_sets_from_the_keyframe(clips):
    encoded = clips["hevc-main"]
    info = encoded.info.model_copy(update={"video": encoded.info.video.model_copy(update={"extradata": b""})})
    muxer = LiveMuxer(info, encoded.packets[0])
    stream = muxer.init + b"".join(muxer.fragment(run).data for run in groups_as_ingest_sends(encoded.packets, 8))
    assert len(decoded(stream)) == len(encoded.packets)
    assert muxer.codec_string == codec_string("hevc", encoded.info.video.extradata)


def test_samples_are_length_prefixed_nal_units():
    nals = [b"\x67\x64\x00\x1e", b"\x68\xeb", b"\x65\x88\x84\x00\x00"]  # the last one ends in trailing zeros
    annexb = b"\x00\x00\x00\x01" + nals[0] + b"\x00\x00\x01" + nals[1] + b"\x00\x00\x00\x01" + nals[2]
    assert split_annexb(annexb) == [nals[0], nals[1], b"\x65\x88\x84"]
    assert length_prefixed(annexb) == b"".join(len(n).to_bytes(4, "big") + n for n in split_annexb(annexb))
    already = length_prefixed(annexb)
    assert length_prefixed(already) == already


def test_bad_input_is_refused_with_one_clear_error(clips):
    encoded = clips["h264-high"]
    with pytest.raises(LiveMuxError, match="must start at a keyframe"):
        LiveMuxer(encoded.info, encoded.packets[1])
    vp9 = encoded.info.model_copy(update={"video": encoded.info.video.model_copy(update={"codec": "vp9"})})
    with pytest.raises(LiveMuxError, match="'vp9' cannot be streamed live"):
        LiveMuxer(vp9, encoded.packets[0])
    garbage = encoded.packets[0].model_copy(update={"data": b"\x00\x00\x01\x09\xf0"})  # an AUD and nothing else
    empty = encoded.info.model_copy(update={"video": encoded.info.video.model_copy(update={"extradata": b""})})
    with pytest.raises(LiveMuxError, match="no h264 SPS"):
        LiveMuxer(empty, garbage)
    muxer = LiveMuxer(encoded.info, encoded.packets[0])
    muxer.fragment(encoded.packets[:3])
    with pytest.raises(LiveMuxError, match="does not come after"):
        muxer.fragment(encoded.packets[2:4])
    with pytest.raises(LiveMuxError, match="at least one packet"):
        muxer.fragment(())


def test_timescale_follows_the_packets_time_base(clips):
    """Packets in a 1/90000 time base (RTSP) and in the encoder's: fragments place frames at the same seconds."""
    encoded = clips["h264-high"]
    tb = Fraction(*encoded.info.video.time_base)
    rtsp = [p.model_copy(update={"pts": round(p.pts * tb * 90000), "dts": round(p.dts * tb * 90000),
                                 "duration": round(p.duration * tb * 90000)}) for p in encoded.packets]
    info = encoded.info.model_copy(update={"video": encoded.info.video.model_copy(update={"time_base": (1, 90000)})})
    muxer = LiveMuxer(info, rtsp[0])
    stream = muxer.init + b"".join(muxer.fragment(run).data for run in groups_as_ingest_sends(tuple(rtsp), 4))
    assert muxer.timescale == 90000
    assert [t for t, _ in decoded(stream)] == pytest.approx([i / 15 for i in range(len(rtsp))], abs=1e-4)
