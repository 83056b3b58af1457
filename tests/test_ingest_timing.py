"""Ingest's per-session clock: missing pts, decode times never forced, wall-time anchoring (pure)."""

from fractions import Fraction

import pytest

from spectare.ingest.reorder import DecodeTimes
from spectare.ingest.timing import RawPacket, SessionClock

TB = Fraction(1, 90000)  # RTSP video
FRAME = 6000  # 15 fps


def session_clock(depth: int | None = 0) -> SessionClock:
    return SessionClock(TB, FRAME, DecodeTimes(depth, FRAME).push)


def raw(pts, dts=None, duration=FRAME, keyframe=False, received=1000.0):
    return RawPacket(pts, dts if dts is not None else pts, duration, keyframe, b"x", received)


def test_wall_time_is_anchored_once_then_follows_pts():
    clock = session_clock()
    out = [p for i in range(4) for p in clock.push(raw(i * FRAME, received=1000.0 + i * 0.3))]  # jittery arrival
    assert [p.wall_time for p in out] == pytest.approx([1000.0, 1000.0 + 1 / 15, 1000.0 + 2 / 15, 1000.0 + 3 / 15])


@pytest.mark.parametrize(
    ("packets", "expected_pts"),
    [
        # RTSP's first packet has neither pts nor dts: stamped one frame before the next.
        ([raw(None, None, keyframe=True), raw(3000), raw(9000)], [-3000, 3000, 9000]),
        # Several untimed packets, one with no duration (the default applies).
        ([raw(None, None), raw(None, None, duration=0), raw(12000)], [0, 6000, 12000]),
        # pts missing mid-stream: the latest pts plus one duration (a camera's dts is not used).
        ([raw(0), raw(None, 6000), raw(None, None)], [0, 6000, 12000]),
    ],
)
def test_missing_timestamps_are_filled(packets, expected_pts):
    clock = session_clock()
    out = [p for packet in packets for p in clock.push(packet)]
    assert [p.pts for p in out] == expected_pts
    assert all(p.dts <= p.pts for p in out)


def test_untimed_packets_wait_for_a_timed_one():
    clock = session_clock()
    assert clock.push(raw(None, None, keyframe=True)) == []
    out = clock.push(raw(6000, received=50.0))
    assert [(p.pts, p.keyframe) for p in out] == [(0, True), (6000, False)]
    assert out[0].wall_time == pytest.approx(50.0 - 1 / 15)


def test_dts_come_from_pts_not_from_the_camera():
    clock = session_clock()
    out = [p for packet in (raw(0), raw(6000, dts=6000), raw(12000, dts=6000), raw(18000, dts=5000))
           for p in clock.push(packet)]
    assert [p.dts for p in out] == [0, 6000, 12000, 18000]


def test_b_frames_keep_their_pts_and_wall_time_follows_pts():
    clock = session_clock(1)
    pts = [0, 2, 1, 5, 3, 4]  # IBBP, in frames
    out = [p for t in pts for p in clock.push(raw(t * FRAME, None, keyframe=t == 0, received=500.0))]
    assert [p.pts for p in out] == [t * FRAME for t in pts]
    assert [p.dts for p in out] == [t * FRAME for t in range(-1, 5)]
    assert [p.wall_time - out[0].wall_time for p in out] == pytest.approx([t / 15 for t in pts])
