"""Decode times for B-frame streams (pure): presentation times in decode order -> dts, as the encoder made them.

The tables are the first frames of real encoder output (ffmpeg with libx264 / libx265 into MPEG-TS, which keeps
each frame's pts and the encoder's dts), in frame units; the encoder tests at the end derive the same from whole
streams encoded here and compare with the encoder's own decode times.
"""

import subprocess
from pathlib import Path

import av
import pytest

from spectare.ingest.media import SourceEnded
from spectare.ingest.paramsets import split_annexb
from spectare.ingest.reorder import (
    PROBE_FRAMES,
    DecodeTimes,
    ReorderDepthExceeded,
    declared_depth,
    measured_depth,
)
from spectare.ingest.timing import RawPacket
from spectare.local.testcam import _ffmpeg

from .media import source_video

FRAME = 3003  # 29.97 fps at 90 kHz

# (name, depth the SPS declares, pts in decode order in frames, the encoder's dts in frames)
PATTERNS = [
    ("x264 -bf 0 (P only)", 0, [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5]),
    ("x264 -bf 2 b-pyramid=none (IBBP)", 1,
     [0, 2, 1, 5, 3, 4, 8, 6, 7, 11, 9, 10, 12, 14, 13], [-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]),
    ("x264 defaults (3 B-frames, pyramid)", 2,
     [0, 4, 2, 1, 3, 8, 6, 5, 7, 11, 9, 10, 12, 16, 14, 13, 15], list(range(-2, 15))),
    ("x265 defaults, closed GOP (hierarchical B)", 2,
     [0, 4, 2, 1, 3, 9, 7, 5, 6, 8, 11, 10, 15, 13, 12, 14, 16, 20, 18], list(range(-2, 17))),
    ("x265 bframes=7 (deeper hierarchy)", 2,
     [0, 4, 2, 1, 3, 9, 7, 5, 6, 8, 11, 10, 16, 14, 12, 13, 15, 20, 18], list(range(-2, 17))),
]


def frames(pts: list[int | None], first_key: bool = True) -> list[RawPacket]:
    return [RawPacket(None if t is None else t * FRAME, None, 0, first_key and i == 0, b"", 100.0 + i / 30)
            for i, t in enumerate(pts)]


def run(clock: DecodeTimes, packets: list[RawPacket]) -> list[RawPacket]:
    return [out for p in packets for out in clock.push(p)]


def check(out: list[RawPacket]) -> None:
    """What every muxer needs: dts strictly increasing, never after pts."""
    dts = [p.dts for p in out]
    assert all(b > a for a, b in zip(dts, dts[1:], strict=False)), dts
    assert all(p.dts <= p.pts for p in out), [(p.pts, p.dts) for p in out]


@pytest.mark.parametrize(("name", "depth", "pts", "encoder_dts"), PATTERNS, ids=[p[0] for p in PATTERNS])
def test_dts_from_the_declared_depth_are_the_encoders(name, depth, pts, encoder_dts):
    out = run(DecodeTimes(depth, FRAME), frames(pts))
    assert [p.pts for p in out] == [t * FRAME for t in pts]
    assert [p.dts for p in out] == [t * FRAME for t in encoder_dts]
    check(out)
    assert measured_depth(pts) <= depth


@pytest.mark.parametrize(("name", "depth", "pts", "encoder_dts"), PATTERNS, ids=[p[0] for p in PATTERNS])
def test_undeclared_depth_is_measured_on_the_opening_window(name, depth, pts, encoder_dts):
    clock = DecodeTimes(None, 1234)  # a wrong nominal duration: the window's own spacing wins
    packets = frames(pts + list(range(max(pts) + 1, max(pts) + 1 + PROBE_FRAMES)))
    assert run(clock, packets[:PROBE_FRAMES - 1]) == []  # held back until the window is full
    out = run(clock, packets[PROBE_FRAMES - 1:])
    assert (clock.depth, clock.duration) == (depth, FRAME)
    assert [p.dts for p in out[:len(pts)]] == [t * FRAME for t in encoder_dts]
    check(out)


def test_ffmpegs_untimed_first_packets_are_placed_before_the_first_shown_frame():
    # What FFmpeg's RTSP demuxer gives for the x264 -bf 2 scripted camera: the keyframe without pts, then the
    # P-frame at 0 and the B-frames shown before it (see test_ffmpeg_path_times_b_frames in test_bframes.py).
    pts = [None, 0, -2, -1, 2, 1, 5, 3, 4]
    out = run(DecodeTimes(2, 1111), frames(pts))
    assert [p.pts // FRAME for p in out] == [-3, 0, -2, -1, 2, 1, 5, 3, 4]
    assert [p.dts // FRAME for p in out] == [-5, -4, -3, -2, -1, 0, 1, 2, 3]
    check(out)


def test_plain_stream_dts_equal_pts_and_nothing_waits():
    clock = DecodeTimes(0, FRAME)
    for i in range(5):
        (out,) = clock.push(frames([i])[0])
        assert out.pts == out.dts == i * FRAME


def test_untimed_frame_in_mid_stream_is_shown_after_the_latest():
    out = run(DecodeTimes(0, FRAME), frames([0, 1, None, 3]))
    assert [p.pts // FRAME for p in out] == [0, 1, 2, 3]
    check(out)


@pytest.mark.parametrize(("declared", "pts", "needed"), [
    (0, [0, 2, 1], 1),  # a camera that declares no reordering sends IBBP
    (1, [0, 4, 2, 1, 3], 2),  # pyramid B-frames under a depth of 1
])
def test_deeper_reorder_than_declared_ends_the_session_with_the_depth_needed(declared, pts, needed):
    clock = DecodeTimes(declared, FRAME)
    with pytest.raises(ReorderDepthExceeded) as raised:
        run(clock, frames(pts))
    assert raised.value.needed == needed and isinstance(raised.value, SourceEnded)
    out = run(DecodeTimes(raised.value.needed, FRAME), frames(pts))  # the next session, with that depth
    check(out)


def test_a_clock_going_back_is_not_a_reorder():
    clock = DecodeTimes(2, FRAME)
    run(clock, frames(list(range(40))))
    with pytest.raises(SourceEnded, match="timestamps went back") as raised:
        clock.push(frames([5])[0])
    assert not isinstance(raised.value, ReorderDepthExceeded)


@pytest.mark.parametrize(("pts", "depth"), [
    ([0, 1, 2, 3], 0), ([0, 2, 1, 3], 1), ([0, 4, 2, 1, 3], 2), ([0, 8, 4, 2, 1, 3, 6, 5, 7], 3), ([3, 2, 1, 0], 3),
])
def test_measured_depth(pts, depth):
    assert measured_depth(pts) == depth


# -- real encoders: the SPS's declared depth, and whole streams' decode times -----------------------------

ENCODERS = {
    "x264 defaults": (["-c:v", "libx264"], "h264", 2),
    "x264 -bf 0": (["-c:v", "libx264", "-bf", "0"], "h264", 0),
    "x264 IBBP": (["-c:v", "libx264", "-bf", "2", "-x264-params", "b-pyramid=none"], "h264", 1),
    "x264 baseline": (["-c:v", "libx264", "-profile:v", "baseline"], "h264", 0),
    "x264 with HRD": (["-c:v", "libx264", "-x264-params", "nal-hrd=vbr:vbv-maxrate=600:vbv-bufsize=1000",
                       "-b:v", "500k"], "h264", 2),
    "x265 defaults": (["-c:v", "libx265", "-x265-params", "log-level=error:open-gop=0"], "hevc", 2),
    "x265 bframes=0": (["-c:v", "libx265", "-x265-params", "log-level=error:bframes=0"], "hevc", 0),
    "x265 no pyramid": (["-c:v", "libx265", "-x265-params", "log-level=error:b-pyramid=0:open-gop=0"], "hevc", 1),
}


def encode_ts(tmp: Path, name: str, args: list[str], frames: int = 60) -> Path:
    out = tmp / f"{abs(hash(name))}.ts"
    subprocess.run([_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source_video()), "-frames:v",
                    str(frames), "-vf", "scale=320:180", "-g", "24", *args, "-an", "-f", "mpegts", str(out)],
                   check=True, timeout=120)
    return out


@pytest.mark.parametrize("name", list(ENCODERS))
def test_real_streams_declare_their_depth_and_get_the_encoders_decode_times(tmp_path, name):
    args, codec, depth = ENCODERS[name]
    with av.open(str(encode_ts(tmp_path, name, args))) as container:
        stream = container.streams.video[0]
        packets = [p for p in container.demux(stream) if p.size]
        scale = stream.time_base * 90000
    first = bytes(packets[0])
    sets = b"".join(b"\x00\x00\x00\x01" + n for n in split_annexb(first)
                    if (((n[0] >> 1) & 0x3F) in (32, 33, 34) if codec == "hevc" else n[0] & 0x1F in (7, 8)))
    assert declared_depth(codec, sets) == depth
    pts = [round((p.pts - packets[0].pts) * scale) for p in packets]
    encoder_dts = [round((p.dts - packets[0].pts) * scale) for p in packets]
    assert measured_depth(pts) <= depth
    out = run(DecodeTimes(depth, FRAME), [RawPacket(t, None, 0, p.is_keyframe, b"", 0.0)
                                          for t, p in zip(pts, packets, strict=True)])
    assert [p.dts for p in out] == encoder_dts
    check(out)


def test_depth_from_an_avcc_record(tmp_path):
    mp4 = tmp_path / "x.mp4"
    subprocess.run([_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source_video()), "-frames:v",
                    "10", "-vf", "scale=320:180", "-c:v", "libx264", "-an", str(mp4)], check=True, timeout=120)
    with av.open(str(mp4)) as container:
        record = bytes(container.streams.video[0].codec_context.extradata)
    assert record[:1] == b"\x01" and declared_depth("h264", record) == 2
    assert declared_depth("h264", b"") is None and declared_depth("hevc", b"\x00\x00\x00\x01\x40\x01") is None
