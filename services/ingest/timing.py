"""Timestamps for one session: wall-clock time for the video packets (pure, no I/O).

Decode times, and presentation times the camera did not give (RTSP's first packets through FFmpeg), come from
`reorder.DecodeTimes`, the same way whichever client read the camera: derived from the presentation times and
the stream's reorder depth (B-frames), never forced. Wall-clock time is anchored once, at the receipt of the
session's first packet the camera timed, and advanced by pts from there, so consecutive chunks are exactly back to
back whatever the network jitter. The first, not the one that released the opening window held back for B-frames:
audio is anchored at its first unit's receipt (`audio.AudioPath`), and a later frame of the window may be sent
frames away from its presentation time (a camera sends a B-frame after the frame it refers to; a server replaying
a file sends each frame at its decode time, a P-frame ahead of its own), which would put the picture that far off
the sound.
"""

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class RawPacket:
    """A demuxed packet as the camera gave it."""

    pts: int | None
    dts: int | None
    duration: int
    keyframe: bool
    data: bytes
    received: float  # wall clock at receipt


@dataclass(frozen=True)
class TimedPacket:
    pts: int
    dts: int
    duration: int
    keyframe: bool
    data: bytes
    wall_time: float


class SessionClock:
    """Stamps the video packets of one session. `decode_times` (a `reorder.DecodeTimes().push`) gives packets
    back with pts and dts, in decode order, possibly later (an opening window held back)."""

    def __init__(self, time_base: Fraction, default_duration: int,
                 decode_times: Callable[[RawPacket], list[RawPacket]]) -> None:
        self.time_base = time_base
        self.default_duration = max(default_duration, 1)
        self.decode_times = decode_times
        self.anchor: tuple[float, int] | None = None  # (wall seconds, pts) the session's wall time follows
        self._first_timed: tuple[float, int] | None = None  # (receipt, pts) of the first packet with a pts

    def push(self, raw: RawPacket) -> list[TimedPacket]:
        """Timed packets ready to publish, in order (possibly none while the opening window is held back)."""
        if self._first_timed is None and raw.pts is not None:
            self._first_timed = (raw.received, raw.pts)
        ready = self.decode_times(raw)
        if ready and self.anchor is None:
            last = ready[-1]  # were none timed by the camera: the packet that released the window
            assert last.pts is not None
            self.anchor = self._first_timed or (last.received, last.pts)
        return [self._stamp(p) for p in ready]

    def _stamp(self, raw: RawPacket) -> TimedPacket:
        assert raw.pts is not None and raw.dts is not None and self.anchor is not None
        wall, anchor_pts = self.anchor
        return TimedPacket(raw.pts, raw.dts, raw.duration if raw.duration > 0 else self.default_duration,
                           raw.keyframe, raw.data, wall + float((raw.pts - anchor_pts) * self.time_base))
