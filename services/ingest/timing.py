"""Timestamps for one session: complete missing pts/dts and anchor wall-clock time (pure, no I/O).

RTSP's first packet often has no pts; a later one may repeat a dts. Packets without pts wait until
a timed packet arrives and are then stamped backwards from it by their durations. Wall-clock time is
anchored once, at the receipt of the first timed video packet, and advanced by pts from there, so
consecutive chunks are exactly back to back whatever the network jitter.
"""

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
    """Stamps the video packets of one session."""

    def __init__(self, time_base: Fraction, default_duration: int) -> None:
        self.time_base = time_base
        self.default_duration = max(default_duration, 1)
        self.anchor: tuple[float, int] | None = None  # (wall seconds, pts) of the first timed packet
        self.waiting: list[RawPacket] = []
        self.last_dts: int | None = None
        self.last_pts: int | None = None

    def push(self, raw: RawPacket) -> list[TimedPacket]:
        """Timed packets ready to publish, in order (possibly none while waiting for a pts)."""
        pts = raw.pts if raw.pts is not None else raw.dts
        if pts is None and self.last_pts is not None:
            pts = self.last_pts + self._duration(raw)
        if pts is None:
            self.waiting.append(raw)
            return []
        if self.anchor is None:
            self.anchor = (raw.received, pts)
        out: list[TimedPacket] = []
        if self.waiting:
            # Stamp the waiting packets backwards from this one.
            stamps, at = [], pts
            for early in reversed(self.waiting):
                at -= self._duration(early)
                stamps.append(at)
            for early, early_pts in zip(self.waiting, reversed(stamps), strict=True):
                out.append(self._stamp(early, early_pts, early_pts))
            self.waiting.clear()
        out.append(self._stamp(raw, pts, raw.dts if raw.dts is not None else pts))
        return out

    def _duration(self, raw: RawPacket) -> int:
        return raw.duration if raw.duration > 0 else self.default_duration

    def _stamp(self, raw: RawPacket, pts: int, dts: int) -> TimedPacket:
        if self.last_dts is not None and dts <= self.last_dts:
            dts = self.last_dts + 1  # muxers refuse non-increasing dts
        pts = max(pts, dts)
        self.last_dts, self.last_pts = dts, pts
        assert self.anchor is not None
        wall, anchor_pts = self.anchor
        return TimedPacket(pts, dts, self._duration(raw), raw.keyframe, raw.data,
                           wall + float((pts - anchor_pts) * self.time_base))
