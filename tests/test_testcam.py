"""The RTSP test camera: clips built from real footage, served over real RTSP, read back with PyAV."""

import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import pytest

from spectare.core.errors import StackError
from spectare.local import testcam
from spectare.local.testcam import (
    GI_PYTHON,
    SERVER_SCRIPT,
    RtspTestCamera,
    make_test_clip,
    probe_clip,
)
from tests.media import annexb_nals, file_access_units, picture_nals, source_video

pytestmark = pytest.mark.integration  # the test camera is a real RTSP server (GStreamer)

RTSP_OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "0", "probesize": "32768"}


@dataclass(frozen=True)
class ClipSpec:
    name: str
    width: int
    height: int
    fps: int
    gop_seconds: float
    seconds: float

    @property
    def gop(self) -> int:
        return round(self.fps * self.gop_seconds)


SPECS = {
    "small": ClipSpec("small", 320, 240, 15, 1, 6),
    "wide": ClipSpec("wide", 640, 360, 10, 2, 6),
    "short": ClipSpec("short", 320, 240, 15, 1, 2),
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("clips")
    src = source_video()
    with ThreadPoolExecutor(len(SPECS)) as pool:
        futures = {
            name: pool.submit(make_test_clip, src, out / f"{name}.mp4", width=s.width, height=s.height,
                              fps=s.fps, gop_seconds=s.gop_seconds, seconds=s.seconds)
            for name, s in SPECS.items()
        }
        return {name: f.result() for name, f in futures.items()}


@pytest.fixture(scope="module")
def camera(clips, tmp_path_factory):
    cam = RtspTestCamera(clips, tmp_path_factory.mktemp("testcam") / "testcam.log")
    cam.start()
    yield cam
    cam.stop()
    assert not cam.alive()


# --- helpers ---------------------------------------------------------------------------------------


@dataclass
class Received:
    codec: str = ""
    width: int = 0
    height: int = 0
    time_base: Fraction = Fraction(1, 90000)
    pts: list[int | None] = field(default_factory=list)
    keys: list[bool] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    wall_for_media: float = 0.0  # seconds from calling av.open until `media_seconds` of stream arrived
    decoded: int = 0
    decode_errors: list[str] = field(default_factory=list)
    frame_sizes: set[tuple[int, int]] = field(default_factory=set)

    def key_indexes(self) -> list[int]:
        return [i for i, k in enumerate(self.keys) if k]


def read_rtsp(url: str, media_seconds: float, decode: str = "first-key") -> Received:
    """Read `media_seconds` of stream time from an RTSP URL; decode nothing, the first keyframe, or all."""
    got = Received()
    t0 = time.monotonic()
    with av.open(url, options=RTSP_OPTIONS, timeout=(5, 5)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        got.codec, got.width, got.height, got.time_base = ctx.name, ctx.width, ctx.height, stream.time_base
        first_pts = None
        for packet in container.demux(stream):
            if not packet.size:
                continue
            got.pts.append(packet.pts)
            got.keys.append(packet.is_keyframe)
            got.payloads.append(bytes(packet))
            if decode == "all" or (decode == "first-key" and packet.is_keyframe and not got.decoded):
                try:
                    for frame in ctx.decode(packet):
                        got.decoded += 1
                        got.frame_sizes.add((frame.width, frame.height))
                except av.FFmpegError as exc:
                    got.decode_errors.append(f"packet {len(got.pts) - 1}: {exc}")
            if packet.pts is not None:
                first_pts = packet.pts if first_pts is None else first_pts
                if (packet.pts - first_pts) * stream.time_base >= media_seconds:
                    break
            if time.monotonic() - t0 > media_seconds + 10:
                raise AssertionError(f"{url}: {media_seconds}s of stream did not arrive in time")
        got.wall_for_media = time.monotonic() - t0
        if decode == "all":
            for frame in ctx.decode(None):
                got.decoded += 1
                got.frame_sizes.add((frame.width, frame.height))
    return got


def assert_stream_is_clip(got: Received, spec: ClipSpec, clip: Path, media_seconds: float) -> None:
    assert got.codec == "h264"
    assert (got.width, got.height) == (spec.width, spec.height)
    # real time: media_seconds of stream take about media_seconds of wall time, from the open call
    assert media_seconds - 0.5 <= got.wall_for_media <= media_seconds + 1.5, got.wall_for_media
    # keyframes exactly every GOP, starting with the very first packet (the clip's start)
    n = len(got.keys)
    assert got.key_indexes() == list(range(0, n, spec.gop)), got.key_indexes()
    # the pictures are the file's own, bit for bit, from its first frame, looping: no transcoding
    file_aus = file_access_units(clip)
    for i, payload in enumerate(got.payloads):
        j = i % len(file_aus)
        is_key, nals = file_aus[j]
        assert picture_nals(annexb_nals(payload)) == nals, f"packet {i} differs from file frame {j}"
        assert got.keys[i] == is_key
    # timestamps: one frame duration apart (90 kHz clock), strictly increasing
    stamped = [p for p in got.pts if p is not None]
    steps = {b - a for a, b in zip(stamped, stamped[1:], strict=False)}
    frame = 1 / (spec.fps * got.time_base)
    assert all(abs(step - frame) <= 1 for step in steps), steps


def listening_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def run_server(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([GI_PYTHON, "-I", str(SERVER_SCRIPT), *args], capture_output=True, text=True,
                          timeout=30)


# --- clips -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SPECS))
def test_make_test_clip_has_the_asked_shape(clips, name):
    spec, clip = SPECS[name], clips[name]
    info = probe_clip(clip)
    assert info.codec == "h264"
    assert (info.width, info.height, info.fps) == (spec.width, spec.height, spec.fps)
    assert info.frames == spec.fps * spec.seconds
    assert info.duration == pytest.approx(spec.seconds)
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.profile in ("Main", "High")
        assert not container.streams.audio
        packets = [p for p in container.demux(stream) if p.size]
    # closed GOP of exactly fps*gop_seconds frames: an IDR there and nowhere else
    assert [i for i, p in enumerate(packets) if p.is_keyframe] == list(range(0, len(packets), spec.gop))
    # no B-frames: decode order is presentation order
    assert all(p.pts == p.dts for p in packets)
    assert [p.pts for p in packets] == sorted(p.pts for p in packets)


def test_make_test_clip_is_cached_and_rebuilt_when_settings_change(clips, tmp_path):
    spec, clip = SPECS["short"], clips["short"]
    before = clip.stat().st_mtime_ns
    again = make_test_clip(source_video(), clip, width=spec.width, height=spec.height, fps=spec.fps,
                           gop_seconds=spec.gop_seconds, seconds=spec.seconds)
    assert again == clip and clip.stat().st_mtime_ns == before
    other = tmp_path / "short.mp4"
    other.write_bytes(clip.read_bytes())
    make_test_clip(source_video(), other, width=160, height=120, fps=5, gop_seconds=1, seconds=1,
                   bitrate_kbps=100)
    info = probe_clip(other)
    assert (info.width, info.height, info.frames) == (160, 120, 5)


# --- serving ---------------------------------------------------------------------------------------


def test_two_mounts_serve_their_clips_in_real_time(camera, clips):
    with ThreadPoolExecutor(2) as pool:
        small = pool.submit(read_rtsp, camera.url("small"), 3.0)
        wide = pool.submit(read_rtsp, camera.url("wide"), 3.0)
        results = {"small": small.result(), "wide": wide.result()}
    for name, got in results.items():
        spec = SPECS[name]
        assert_stream_is_clip(got, spec, clips[name], 3.0)
        assert got.decoded == 1 and not got.decode_errors
        assert got.frame_sizes == {(spec.width, spec.height)}


def test_clip_loops_seamlessly(camera, clips):
    spec = SPECS["short"]
    got = read_rtsp(camera.url("short"), 5.0, decode="all")
    assert_stream_is_clip(got, spec, clips["short"], 5.0)
    n = len(got.pts)
    assert abs(n - 5 * spec.fps) <= spec.gop, n
    # the 2 s clip went round at least twice; pts kept rising straight through each boundary
    stamped = [p for p in got.pts if p is not None]
    assert all(b > a for a, b in zip(stamped, stamped[1:], strict=False))
    assert n > 2 * spec.fps * spec.seconds
    # every packet, before and after the loop points, decodes
    assert not got.decode_errors, got.decode_errors
    assert got.decoded == n
    assert got.frame_sizes == {(spec.width, spec.height)}


def test_each_client_gets_the_clip_from_its_start(camera, clips):
    spec = SPECS["small"]
    results: dict[str, Received] = {}

    def client(tag: str, delay: float) -> None:
        time.sleep(delay)
        results[tag] = read_rtsp(camera.url("small"), 3.0)

    threads = [threading.Thread(target=client, args=("first", 0.0)),
               threading.Thread(target=client, args=("second", 1.0))]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert set(results) == {"first", "second"}
    assert time.monotonic() - t0 < 1.0 + 3.0 + 1.5  # they ran side by side
    for got in results.values():
        assert_stream_is_clip(got, spec, clips["small"], 3.0)


def test_udp_transport_is_served_too(camera, clips):
    with av.open(camera.url("small"), options={**RTSP_OPTIONS, "rtsp_transport": "udp"},
                 timeout=(5, 5)) as container:
        stream = container.streams.video[0]
        packets = []
        for packet in container.demux(stream):
            if packet.size:
                packets.append(packet)
            if len(packets) >= SPECS["small"].gop + 1:
                break
    assert stream.codec_context.name == "h264"
    assert [p.is_keyframe for p in packets].count(True) >= 1


# --- bad input -------------------------------------------------------------------------------------


def test_missing_clip_is_refused_naming_the_path(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(StackError, match=str(missing)):
        RtspTestCamera({"cam": missing}, tmp_path / "cam.log").start()
    result = run_server("--port", "0", "--mount", f"cam={missing}")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and str(missing) in result.stderr


def test_taken_port_is_refused_naming_the_port(clips, tmp_path):
    with listening_socket() as sock:
        port = sock.getsockname()[1]
        with pytest.raises(StackError, match=str(port)):
            RtspTestCamera({"cam": clips["short"]}, tmp_path / "cam.log", port=port).start()
        # the server itself refuses too (no launcher pre-check), with one line
        result = run_server("--port", str(port), "--mount", f"cam={clips['short']}")
    assert result.returncode == 3
    assert f"127.0.0.1:{port}" in result.stderr and result.stderr.strip().count("\n") == 0


def test_file_without_h264_is_refused(tmp_path):
    not_h264 = tmp_path / "mpeg4.mp4"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source_video()),
                    "-t", "0.5", "-an", "-vf", "scale=160:120", "-c:v", "mpeg4", str(not_h264)], check=True)
    with pytest.raises(StackError, match="no H.264 video"):
        RtspTestCamera({"cam": not_h264}, tmp_path / "cam.log").start()


def test_missing_gstreamer_says_run_make_setup(clips, tmp_path, monkeypatch):
    # an interpreter that cannot import gi: the system one without its site-packages
    no_gi = tmp_path / "python-without-gi"
    no_gi.write_text(f"#!/bin/sh\nexec {testcam.GI_PYTHON} -S \"$@\"\n")
    no_gi.chmod(0o755)
    monkeypatch.setattr(testcam, "GI_PYTHON", str(no_gi))
    with pytest.raises(StackError, match="run `make setup`") as excinfo:
        RtspTestCamera({"cam": clips["short"]}, tmp_path / "cam.log").start()
    assert "\n" not in str(excinfo.value)
    monkeypatch.setattr(testcam, "GI_PYTHON", str(tmp_path / "no-such-python"))
    with pytest.raises(StackError, match="run `make setup`"):
        RtspTestCamera({"cam": clips["short"]}, tmp_path / "cam.log").start()


def test_stop_and_kill(clips, tmp_path):
    cam = RtspTestCamera({"cam": clips["short"]}, tmp_path / "cam.log")
    with cam:
        assert cam.alive() and cam.url("cam") == f"rtsp://127.0.0.1:{cam.port}/cam"
    assert not cam.alive()
    assert "stopped" in (tmp_path / "cam.log").read_text()
    cam.start()
    cam.kill()
    assert not cam.alive()
