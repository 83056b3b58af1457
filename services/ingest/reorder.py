"""Decode times for video with B-frames: frames in decode order with presentation times -> dts (pure, no I/O).

RTP carries only presentation times (RFC 6184/7798: the RTP timestamp is the sampling instant), and FFmpeg's
RTSP demuxer gives none for its first packets; an MP4 needs a decode time per sample, strictly increasing, no
later than the sample's presentation time. With a reorder depth d (the most frames that may precede a frame in
decode order and follow it in output order: what the SPS states as H.264's max_num_reorder_frames or H.265's
sps_max_num_reorder_pics), frame i's decode time is the (i - d)-th smallest presentation time of frames 0..i:
by then every frame shown before it has been decoded. That is causal (nothing waits for later frames), the
dts run at the frame rate, and dts <= pts for every frame. The first d frames count back from the smallest pts
of the session's opening window (2(d + 1) frames, held back at the start: the frame duration is measured on it)
by whole frame durations.

When the SPS does not state a depth, the opening window (`PROBE_FRAMES`, the largest DPB) is held back and the
depth measured on it. Frames without a pts at the start (FFmpeg's first RTSP packets) are placed one frame
duration apart before the earliest presentation time of the window: a stream's first picture is shown first.
A frame reordered deeper than the depth cannot get a decode time without going back: `ReorderDepthExceeded`
ends the session, and the next one is read with the depth measured (the camera keeps it).
"""

import bisect
import heapq
from collections import deque
from dataclasses import replace

from .media import SourceEnded
from .paramsets import H264_SPS, H265_SPS, ParameterSetError, geometry, nal_type, split_annexb
from .timing import RawPacket

# Frames held back to measure an undeclared reorder depth: the largest decoded picture buffer (H.264 A.3.1,
# H.265 A.4.2) is 16 frames, so no reorder reaches further.
PROBE_FRAMES = 16
MAX_DEPTH = 16


class ReorderDepthExceeded(SourceEnded):
    """A frame came later in decode order than the stream's reorder depth allows (the SPS understated it)."""

    def __init__(self, declared: int, needed: int) -> None:
        super().__init__(f"B-frames reordered {needed} frames deep, more than the {declared} the stream declares; "
                         f"reconnecting with a depth of {needed}")
        self.needed = needed


class DecodeTimes:
    """One session's video frames, in decode order: `push` gives them back with pts and dts, in the same order
    (none while the opening window is held back)."""

    def __init__(self, depth: int | None, frame_duration: int, probe_frames: int = PROBE_FRAMES) -> None:
        self.depth = depth  # None: measured on the opening window
        self.duration = max(frame_duration, 1)  # nominal; measured on the opening window when it can be
        self._probe = max(probe_frames, 1)
        self._held: list[RawPacket] | None = []  # the opening window; None once it is released
        self._waiting: list[int] = []  # presentation times not yet handed out as a decode time (a heap)
        self._count = 0  # frames given a dts
        self._floor = 0  # smallest pts of the opening window: the first d frames' dts count back from it
        self._recent: deque[int] = deque(maxlen=MAX_DEPTH + 1)  # the last frames' pts, to measure a reorder
        self._last_dts: int | None = None
        self._last_pts: int | None = None

    def push(self, raw: RawPacket) -> list[RawPacket]:
        if self._held is None:
            return [self._time(raw)]
        self._held.append(raw)
        timed = sum(1 for p in self._held if p.pts is not None)
        if timed < self._window():
            return []
        window, self._held = self._held, None
        return [self._time(p) for p in self._opened(window)]

    def _window(self) -> int:
        """Timed frames the opening window needs: with B-frames, two reorder spans, so that it holds consecutive
        frames (their spacing is the frame duration) and the frames shown right after any untimed ones."""
        if self.depth is None:
            return self._probe
        return 2 * (self.depth + 1) if self.depth else 1

    def _opened(self, window: list[RawPacket]) -> list[RawPacket]:
        """The opening window with every pts filled in; sets the depth, the frame duration and the floor."""
        stamped = sorted({p.pts for p in window if p.pts is not None})
        gaps = [b - a for a, b in zip(stamped, stamped[1:], strict=False)]
        if gaps:
            self.duration = min(gaps)
        leading = next(i for i, p in enumerate(window) if p.pts is not None)
        filled: list[RawPacket] = []
        latest = stamped[0]
        times: list[int] = []
        for i, p in enumerate(window):
            if p.pts is not None:
                pts = p.pts
            elif i < leading:  # before the first timed frame: shown before it
                pts = stamped[0] - (leading - i) * self.duration
            else:  # after one: shown as a P-frame would be
                pts = latest + self.duration
            latest = max(latest, pts)
            times.append(pts)
            filled.append(p if p.pts is not None else replace(p, pts=pts))
        if self.depth is None:
            self.depth = measured_depth(times)
        self._floor = min(times)
        return filled

    def _time(self, raw: RawPacket) -> RawPacket:
        pts = raw.pts if raw.pts is not None else (self._last_pts or 0) + self.duration
        depth = self.depth or 0
        if self._last_dts is not None and pts <= self._last_dts:
            needed = sum(1 for earlier in self._recent if earlier > pts)
            if needed > MAX_DEPTH or needed <= depth:  # not a reorder: the camera's clock went back
                raise SourceEnded(f"video timestamps went back (pts {pts} after a frame decoded at {self._last_dts})")
            raise ReorderDepthExceeded(depth, needed)
        heapq.heappush(self._waiting, pts)
        if self._count >= depth:
            dts = heapq.heappop(self._waiting)
        else:
            dts = self._floor - (depth - self._count) * self.duration
        self._count += 1
        self._recent.append(pts)
        self._last_dts = dts
        self._last_pts = pts if self._last_pts is None else max(self._last_pts, pts)
        return replace(raw, pts=pts, dts=dts)


def measured_depth(pts: list[int]) -> int:
    """The reorder depth of frames in decode order: the most that precede one and are shown after it."""
    seen: list[int] = []
    depth = 0
    for t in pts:
        depth = max(depth, len(seen) - bisect.bisect_right(seen, t))
        bisect.insort(seen, t)
    return depth


def declared_depth(codec: str, extradata: bytes) -> int | None:
    """The reorder depth the stream's SPS states (None when it does not, or there is no readable SPS), from
    Annex-B parameter sets or an avcC record (what FFmpeg gives for MP4/MKV sources)."""
    sps_type = H265_SPS if codec == "hevc" else H264_SPS
    nals = split_annexb(extradata) if extradata[:1] != b"\x01" else _avcc_sps(extradata) if codec == "h264" else []
    sps = next((n for n in nals if n and nal_type(codec, n) == sps_type), None)
    if sps is None:
        return None
    try:
        return geometry(codec, sps).reorder_depth
    except ParameterSetError:
        return None


def _avcc_sps(record: bytes) -> list[bytes]:
    """The SPS NAL units of an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1)."""
    out, at = [], 6
    for _ in range(record[5] & 0x1F if len(record) > 5 else 0):
        size = int.from_bytes(record[at:at + 2], "big")
        out.append(record[at + 2:at + 2 + size])
        at += 2 + size
    return out
