"""Spectare's own RTSP client, pure parts: SDP, parameter sets, RTP depacketizing, authentication.

Access units come from real encoders (libx264, libx265 through ffmpeg); the RTP packets are made here
by an independent packetizer written from RFC 6184 / RFC 7798, in every packetization the client reads.
"""

import asyncio
import base64
import hashlib
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import pytest

from spectare.core.errors import UnreachableError
from spectare.ingest import sdp
from spectare.ingest.paramsets import ParameterSetError, annexb, geometry, split_annexb, sprop_nals
from spectare.ingest.rtp import Depacketizer, InterleavedReader, UnsupportedStream
from spectare.ingest.rtsp import Challenge, RtspSource, authorization, choose_challenge, parse_challenges
from spectare.local.testcam import _ffmpeg

from .media import source_video
from .rtp_packets import interleave, nals_of, packetize
from .rtsp_camera import ScriptedRtspCamera, b_frame_camera, is_parameter_set

# -- real encoder output ---------------------------------------------------------------------------

def encode(tmp: Path, codec: str, width: int, height: int, extra: tuple[str, ...] = (), frames: int = 12) -> Path:
    out = tmp / f"{codec}-{width}x{height}-{abs(hash(extra))}.{'hevc' if codec == 'hevc' else 'h264'}"
    encoder = ["-c:v", "libx265", "-x265-params", "log-level=error"] if codec == "hevc" else ["-c:v", "libx264"]
    subprocess.run([_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source_video()),
                    "-frames:v", str(frames), "-vf", f"scale={width}:{height}", "-g", "6", "-bf", "0", *encoder,
                    *extra, "-f", "hevc" if codec == "hevc" else "h264", str(out)], check=True, timeout=120)
    return out


def access_units(path: Path) -> tuple[list[tuple[bytes, bool]], int, int]:
    """(data, keyframe) per access unit as FFmpeg's parser splits them, and FFmpeg's picture size."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        units = [(bytes(p), p.is_keyframe) for p in container.demux(stream) if p.size]
        return units, stream.codec_context.width, stream.codec_context.height


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("encoded")
    return {
        "h264-1080p": encode(tmp, "h264", 1920, 1080, ("-x264-params", "vui=1", "-r", "15")),
        "h264-360p-baseline": encode(tmp, "h264", 640, 360, ("-profile:v", "baseline")),
        "h264-odd-crop": encode(tmp, "h264", 718, 402),
        "h264-444": encode(tmp, "h264", 320, 240, ("-pix_fmt", "yuv444p", "-profile:v", "high444")),
        "h264-interlaced": encode(tmp, "h264", 720, 576, ("-flags", "+ildct+ilme", "-x264-params", "tff=1")),
        "hevc-1080p": encode(tmp, "hevc", 1920, 1080),
        "hevc-odd": encode(tmp, "hevc", 704, 578),
    }


def depacketize(codec: str, stream: bytes, feed_size: int | None = None) -> list:
    reader = InterleavedReader(0, Depacketizer(codec), 96)
    step = feed_size or len(stream)
    for i in range(0, len(stream), step):
        reader.feed(stream[i:i + step])
    reader.depacketizer.finish()
    return reader.depacketizer.pending


def as_annexb(unit: bytes) -> bytes:
    """An access unit with every NAL unit behind a 4-byte start code, as the client gives them."""
    return annexb(nals_of(unit))


# -- depacketizing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("clip", ["h264-1080p", "h264-360p-baseline", "hevc-1080p"])
@pytest.mark.parametrize(("mtu", "aggregate"), [(1400, False), (1400, True), (200, True), (60000, True)])
def test_real_access_units_survive_every_packetization(clips, clip, mtu, aggregate):
    codec = "hevc" if clip.startswith("hevc") else "h264"
    units, _, _ = access_units(clips[clip])
    packets = packetize(codec, [u for u, _ in units], mtu, aggregate)
    out = depacketize(codec, interleave(packets))
    assert [u.data for u in out] == [as_annexb(u) for u, _ in units]
    assert [u.keyframe for u in out] == [k for _, k in units]
    assert [u.timestamp for u in out] == [i * 6000 for i in range(len(units))]


@pytest.mark.parametrize("feed_size", [1, 3, 7, 1000, 65536])
def test_bytes_split_anywhere_give_the_same_units(clips, feed_size):
    units, _, _ = access_units(clips["h264-360p-baseline"])
    stream = interleave(packetize("h264", [u for u, _ in units], 500, True))
    assert [u.data for u in depacketize("h264", stream, feed_size)] == [as_annexb(u) for u, _ in units]


@pytest.mark.parametrize(("padding", "csrc", "extension"), [(4, 0, b""), (0, 2, b""), (0, 0, b"\x10\x20\x30\x40"),
                                                             (3, 1, b"\x01\x02\x03\x04\x05\x06\x07\x08")])
def test_rtp_header_options_are_skipped(clips, padding, csrc, extension):
    units, _, _ = access_units(clips["h264-360p-baseline"])
    stream = interleave(packetize("h264", [u for u, _ in units[:4]], 1400, False), padding=padding, csrc=csrc,
                        extension=extension)
    assert [u.data for u in depacketize("h264", stream)] == [as_annexb(u) for u, _ in units[:4]]


def test_timestamps_continue_across_32_bit_wrap_around(clips):
    units, _, _ = access_units(clips["h264-360p-baseline"])
    stream = interleave(packetize("h264", [u for u, _ in units[:6]], 1400, False, ts0=0xFFFFFFFF - 12000))
    assert [u.timestamp for u in depacketize("h264", stream)] == [0, 6000, 12000, 18000, 24000, 30000]


def test_a_lost_fragment_drops_only_its_nal_unit(clips):
    units, _, _ = access_units(clips["h264-1080p"])
    packets = packetize("h264", [u for u, _ in units[:3]], 1400, False)
    fragments = [i for i, (payload, ts, _, _) in enumerate(packets) if payload[0] & 0x1F == 28 and ts == 1000]
    lost = fragments[len(fragments) // 2]  # a middle piece of the keyframe
    reader = InterleavedReader(0, Depacketizer("h264"), 96)
    reader.feed(interleave(packets[:lost] + packets[lost + 1:]))
    reader.depacketizer.finish()
    out = reader.depacketizer.pending
    assert reader.depacketizer.stats.lost_packets == 1 and reader.depacketizer.stats.dropped_nals == 1
    assert [u.data for u in out[1:]] == [as_annexb(u) for u, _ in units[1:3]], "later units are untouched"
    assert len(out[0].data) < len(as_annexb(units[0][0]))


def test_other_channels_payload_types_and_rtsp_answers_are_kept_apart(clips):
    units, _, _ = access_units(clips["h264-360p-baseline"])
    video = interleave(packetize("h264", [u for u, _ in units[:2]], 1400, False))
    rtcp = interleave([(b"\x00" * 20, 0, False, 0)], channel=1)
    other_pt = interleave(packetize("h264", [u for u, _ in units[:2]], 1400, False), payload_type=97)
    answer = b"RTSP/1.0 200 OK\r\nCSeq: 5\r\nContent-Length: 4\r\n\r\nabcd"
    reader = InterleavedReader(0, Depacketizer("h264"), 96)
    reader.feed(rtcp + answer + other_pt + video)
    reader.depacketizer.finish()
    assert [u.data for u in reader.depacketizer.pending] == [as_annexb(u) for u, _ in units[:2]]
    assert reader.messages == [answer]


def test_in_band_parameter_sets_are_collected(clips):
    units, _, _ = access_units(clips["hevc-1080p"])
    reader = InterleavedReader(0, Depacketizer("hevc"), 96)
    reader.feed(interleave(packetize("hevc", [u for u, _ in units[:1]], 1400, True)))
    assert sorted(reader.depacketizer.parameter_sets) == [32, 33, 34]  # VPS, SPS, PPS


def test_only_h264_and_h265_have_a_depacketizer():
    with pytest.raises(UnsupportedStream):
        Depacketizer("mjpeg")


# -- parameter sets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("clip", ["h264-1080p", "h264-360p-baseline", "h264-odd-crop", "h264-444",
                                  "h264-interlaced", "hevc-1080p", "hevc-odd"])
def test_picture_size_from_the_sps_matches_ffmpeg(clips, clip):
    codec = "hevc" if clip.startswith("hevc") else "h264"
    units, width, height = access_units(clips[clip])
    sps_type = 33 if codec == "hevc" else 7
    sps = next(n for n in nals_of(units[0][0]) if ((n[0] >> 1) & 0x3F if codec == "hevc" else n[0] & 0x1F) == sps_type)
    shape = geometry(codec, sps)
    assert (shape.width, shape.height) == (width, height)


def test_frame_rate_from_the_h264_vui(clips):
    units, _, _ = access_units(clips["h264-1080p"])
    sps = next(n for n in nals_of(units[0][0]) if n[0] & 0x1F == 7)
    assert geometry("h264", sps).fps == pytest.approx(15.0)


def test_truncated_sps_is_a_clear_error(clips):
    units, _, _ = access_units(clips["h264-1080p"])
    sps = next(n for n in nals_of(units[0][0]) if n[0] & 0x1F == 7)
    with pytest.raises(ParameterSetError, match="truncated"):
        geometry("h264", sps[:4])


def test_sprop_parameter_sets_decode_with_or_without_padding():
    sps, pps = b"\x67\x42\xc0\x1e\xd9", b"\x68\xce\x3c\x80"
    values = [",".join(base64.b64encode(n).decode().rstrip("=") for n in (sps, pps))]
    assert sprop_nals(values) == [sps, pps]
    with pytest.raises(ParameterSetError):
        sprop_nals(["not*base64"])


# -- SDP --------------------------------------------------------------------------------------------

CAMERA_SDP = """v=0
o=- 1 1 IN IP4 192.168.1.64
s=Media Presentation
a=control:*
m=video 0 RTP/AVP 96
a=rtpmap:96 H264/90000
a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z0IAKeKQFAe2AtwEBAaQeJEV,aM48gA==
a=control:trackID=1
a=framerate:25.0
m=audio 0 RTP/AVP 0
a=control:trackID=2
m=application 0 RTP/AVP 107
a=rtpmap:107 vnd.onvif.metadata/90000
a=control:trackID=3
"""


def test_sdp_of_a_typical_camera():
    session = sdp.parse(CAMERA_SDP)
    video, audio = session.first("video"), session.first("audio")
    assert (video.codec, video.payload_type, video.clock_rate, video.framerate) == ("h264", 96, 90000, 25.0)
    assert video.fmtp["packetization-mode"] == "1"
    assert len(sprop_nals([video.fmtp["sprop-parameter-sets"]])) == 2
    assert audio.codec == "pcm_mulaw" and audio.clock_rate == 8000  # static payload type 0, no rtpmap
    assert session.control_url("rtsp://cam/live/") == "rtsp://cam/live/"


@pytest.mark.parametrize(("control", "base", "expected"), [
    ("trackID=1", "rtsp://cam:554/live/", "rtsp://cam:554/live/trackID=1"),
    ("trackID=1", "rtsp://cam:554/live", "rtsp://cam:554/live/trackID=1"),
    ("rtsp://cam:554/other/track1", "rtsp://cam:554/live/", "rtsp://cam:554/other/track1"),
    ("*", "rtsp://cam/live", "rtsp://cam/live"),
    ("", "rtsp://cam/live", "rtsp://cam/live"),
    ("stream=0", "rtsp://cam/live?channel=1&subtype=0/", "rtsp://cam/live?channel=1&subtype=0/stream=0"),
])
def test_control_urls_resolve_against_the_base(control, base, expected):
    assert sdp.resolve_control(control, base) == expected


# -- authentication ------------------------------------------------------------------------------------

def test_digest_answer_matches_rfc_2617():
    challenge = parse_challenges(['Digest realm="testrealm@host.com", qop="auth,auth-int", '
                                  'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
                                  'opaque="5ccc069c403ebaf9f0171e9517f40e41"'])[0]
    header = authorization(challenge, "Mufasa", "Circle Of Life", "GET", "/dir/index.html", 1, "0a4f113b")
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert "nc=00000001" in header and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in header


def test_digest_without_qop_and_basic():
    digest = Challenge("digest", {"realm": "IP Camera", "nonce": "abc"})
    header = authorization(digest, "admin", "pw", "DESCRIBE", "rtsp://cam/live", 1, "x")
    ha1 = hashlib.md5(b"admin:IP Camera:pw").hexdigest()
    ha2 = hashlib.md5(b"DESCRIBE:rtsp://cam/live").hexdigest()
    expected = hashlib.md5(f"{ha1}:abc:{ha2}".encode()).hexdigest()
    assert f'response="{expected}"' in header and "qop" not in header
    assert authorization(Challenge("basic", {}), "admin", "pw", "DESCRIBE", "x", 1, "x") == "Basic YWRtaW46cHc="


@pytest.mark.parametrize(("headers", "scheme"), [
    (['Basic realm="cam"', 'Digest realm="cam", nonce="n"'], "digest"),
    (['Basic realm="cam"'], "basic"),
    (['Digest realm="cam", nonce="n", algorithm=SHA-256', 'Basic realm="cam"'], "basic"),
    (['Bearer token'], None),
])
def test_digest_is_preferred_over_basic(headers, scheme):
    chosen = choose_challenge(parse_challenges(headers))
    assert (chosen.scheme if chosen else None) == scheme


# -- the client against a scripted camera (H.265, Digest, in-band parameter sets, B-frames) -----------------

async def read_units(url: str, count: int) -> tuple:
    source = await RtspSource.open(url, 5, 5, 0.05)
    try:
        return source.info, [await source.next() for _ in range(count)]
    finally:
        await source.close()


@pytest.mark.integration  # the scripted camera is a real RTSP server on loopback
@pytest.mark.parametrize(("clip", "sprop"), [("hevc-1080p", True), ("hevc-odd", False), ("h264-odd-crop", False)])
async def test_scripted_camera_is_read_with_or_without_sdp_parameter_sets(clips, clip, sprop):
    codec = "hevc" if clip.startswith("hevc") else "h264"
    units, width, height = access_units(clips[clip])
    camera = await ScriptedRtspCamera(codec, [u for u, _ in units], 30, sprop=sprop).start()
    try:
        info, packets = await read_units(camera.url(), len(units) + 3)
    finally:
        await camera.stop()
    assert (info.codec, info.width, info.height) == (codec, width, height)
    assert info.audio is not None and info.audio.codec == "pcm_mulaw", "the SDP's audio track was SET UP"
    assert info.time_base == Fraction(1, 90000)
    assert split_annexb(info.extradata) == [n for n in nals_of(units[0][0]) if is_parameter_set(codec, n)]
    expected = [as_annexb(u) for u, _ in units]
    assert [p.data for p in packets] == (expected + expected)[:len(packets)], "looped once, unit for unit"
    assert [p.keyframe for p in packets][:len(units)] == [k for _, k in units]
    assert [p.pts for p in packets] == [i * 3000 for i in range(len(packets))]


@pytest.mark.integration  # the scripted camera is a real RTSP server on loopback
async def test_digest_camera_opens_with_the_right_password_only(clips):
    units, _, _ = access_units(clips["h264-360p-baseline"])
    camera = await ScriptedRtspCamera("h264", [u for u, _ in units], 30, digest=("admin", "s3cret!")).start()
    try:
        _, packets = await read_units(camera.url("admin:s3cret%21"), 3)  # percent-encoded in the URL
        assert len(packets) == 3
        for credentials, refusal in (("admin:wrong-Pass", "refused the credentials"), ("", "wants credentials")):
            with pytest.raises(UnreachableError) as failure:
                await read_units(camera.url(credentials), 1)
            assert f"the camera {refusal} (401 Unauthorized)" in str(failure.value)
            assert "wrong-Pass" not in str(failure.value)
    finally:
        await camera.stop()


@pytest.mark.integration  # the scripted camera is a real RTSP server on loopback
async def test_reordered_timestamps_are_read_in_decode_order(tmp_path):
    camera = await b_frame_camera(tmp_path)
    try:
        _, packets = await read_units(camera.url(), len(camera.units))
    finally:
        await camera.stop()
    assert [p.data for p in packets] == [as_annexb(u) for u in camera.units]  # decode order, as sent
    assert [p.pts - packets[0].pts for p in packets] == camera.offsets  # RTP time: presentation order
    assert all(p.dts is None for p in packets)  # derived by ingest (reorder.DecodeTimes), not by the client


@pytest.mark.integration  # the scripted camera is a real RTSP server on loopback
async def test_keep_alives_hold_the_session_and_teardown_ends_it(clips):
    units, _, _ = access_units(clips["h264-360p-baseline"])
    camera = await ScriptedRtspCamera("h264", [u for u, _ in units], 30).start()  # session timeout 4 s
    try:
        _, packets = await read_units(camera.url(), 5 * 30)  # five seconds
        await asyncio.sleep(0.2)
    finally:
        await camera.stop()
    assert len(packets) == 150
    assert camera.requests[:5] == ["OPTIONS", "DESCRIBE", "SETUP", "SETUP", "PLAY"]  # video, then the SDP's audio
    assert camera.requests.count("GET_PARAMETER") >= 2, camera.requests  # every timeout / 2
    assert camera.requests[-1] == "TEARDOWN"
