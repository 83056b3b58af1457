"""Cutting one camera's packet stream into chunks: a pure state machine (no I/O, no clock of its own).

Feed it the camera's messages in stream order, each with an opaque ack handle (`on_info`,
`on_packet`), and call `tick(now)` with a monotonic time now and then; each call returns the actions
to carry out, in order: `CloseChunk(plan)` (remux, upload, announce, then ack `plan.ack`) and
`AnnounceGap(gap)` (publish it).

Rules (DESIGN section 3):
- A chunk starts at a video keyframe and is cut at the first video keyframe whose wall_time is at
  least chunk start + segment_seconds (or once the chunk holds `max_packets` packets): the old chunk
  ends exactly at that keyframe's wall_time and the keyframe starts the next one, back to back.
- Packets with no chunk to go into (before a session's first keyframe, after a break) are dropped.
- A new session, a hole in seq (the publisher gave up on a packet) or a stall (no packet for
  `stall_timeout_s` of ticks) is a break: the open chunk closes at its last packet (end = last video
  packet's wall_time + its duration) and a Gap opens there (`end=None`); when the next chunk starts
  the same Gap is announced again with `end` = that chunk's start (consumers upsert by camera+start).
  `Gap.session` is the session of the footage before the gap.
- Packets with seq below the next expected one (redelivery, a publisher's retry) are ignored.
- Audio packets join the open chunk when the session's StreamInfo has audio; frames = video packets.
- `ChunkPlan.ack` is the handle of the last message consumed before the event that closed the chunk,
  so acking it (AckPolicy.ALL) settles the chunk and everything before it, and nothing after.

A chunker may start from where the stored footage ends (`tail`, `open_gap`, read back from the
footage stream after a restart): packets of that session up to the tail are then already stored,
and a stream that resumes anywhere else opens the gap a restart would otherwise hide.
"""

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from spectare.schemas import Gap, Packet, StreamInfo

# Two wall times closer than this are the same instant (they are anchor + pts computed in floats).
TIME_TOLERANCE_S = 1e-3


@dataclass(frozen=True)
class ChunkPlan:
    """Everything needed to build, name, announce and settle one chunk."""

    camera: str
    info: StreamInfo
    packets: tuple[Packet, ...]
    start: float  # wall time of the first (key)frame
    end: float  # wall time the last frame ends
    ack: Any  # handle of the last message to ack once the chunk is stored

    @property
    def session(self) -> str:
        return self.info.session

    @property
    def first_seq(self) -> int:
        return self.packets[0].seq

    @property
    def last_seq(self) -> int:
        return self.packets[-1].seq

    @property
    def frames(self) -> int:
        return sum(1 for p in self.packets if p.track == "video")


@dataclass(frozen=True)
class CloseChunk:
    plan: ChunkPlan


@dataclass(frozen=True)
class AnnounceGap:
    gap: Gap


Action = CloseChunk | AnnounceGap


@dataclass(frozen=True)
class Tail:
    """Where a camera's stored footage ends: the last chunk's session, end time and last seq (if known)."""

    session: str
    end: float
    last_seq: int | None = None


@dataclass
class ChunkerStats:
    chunks: int = 0
    dropped_before_keyframe: int = 0
    duplicates: int = 0
    holes: int = 0
    sessions: int = 0
    stalls: int = 0
    no_stream_info: int = 0
    audio_dropped: int = 0


@dataclass
class _Open:
    info: StreamInfo
    start: float
    packets: list[Packet] = field(default_factory=list)


class Chunker:
    def __init__(self, camera: str, segment_seconds: float, stall_timeout_s: float, now: float, *,
                 max_packets: int = 1_000_000, tail: Tail | None = None, open_gap: Gap | None = None) -> None:
        if segment_seconds <= 0 or stall_timeout_s <= 0 or max_packets < 2:
            raise ValueError("segment_seconds and stall_timeout_s must be > 0, max_packets >= 2")
        self.camera = camera
        self.segment_seconds = float(segment_seconds)
        self.stall_timeout_s = float(stall_timeout_s)
        self.max_packets = max_packets
        self.stats = ChunkerStats()
        self.info: StreamInfo | None = None  # StreamInfo of `session`, None when it could not be found
        self.session: str | None = None  # session of the packets being processed
        self.expected: int | None = None  # next seq of `session`
        self.chunk: _Open | None = None
        self.tail = tail  # where the last closed chunk ended
        self.gap = open_gap  # announced gap whose end is not known yet
        self.last_ack: Any = None  # handle of the last message consumed
        self._last_activity = now
        self._fresh = False
        if open_gap is not None and tail is None:
            self.tail = Tail(open_gap.session or "", open_gap.start)

    # -- feeding --------------------------------------------------------------------------------

    def on_info(self, info: StreamInfo, ack: Any = None) -> list[Action]:
        """A session's StreamInfo (from the stream, or looked up by the caller for a session it has no
        StreamInfo for yet; then `ack` is None)."""
        actions: list[Action] = []
        if info.session == self.session:
            if self.info is None:
                self.info = info  # found at last: the session's next keyframe can start a chunk
        else:
            tail = self.tail
            if self.session is None and self.chunk is None and tail is not None and tail.session == info.session:
                # the first message after a restart continues the stored footage's session
                self.expected = None if tail.last_seq is None else tail.last_seq + 1
            else:
                actions += self._break(f"new stream session {info.session}")
                self.expected = None
                self.stats.sessions += 1
            self.info, self.session = info, info.session
        self._consumed(ack)
        return actions

    def on_packet(self, packet: Packet, ack: Any = None) -> list[Action]:
        actions: list[Action] = []
        self._fresh = True
        if packet.session != self.session:
            # Packets of a session whose StreamInfo the caller could not find: nothing to build with.
            actions += self._break(f"no stream info for session {packet.session}")
            self.info, self.session, self.expected = None, packet.session, None
        if self.expected is not None and packet.seq < self.expected or self._already_stored(packet):
            self.stats.duplicates += 1
            self._consumed(ack)
            return actions
        if self.expected is not None and packet.seq > self.expected:
            self.stats.holes += 1
            actions += self._break(f"packets {self.expected}..{packet.seq - 1} lost")
        self.expected = packet.seq + 1
        if self.info is None:
            self.stats.no_stream_info += 1
        elif packet.track == "audio":
            if self.info.audio is None:
                self.stats.audio_dropped += 1
            elif self.chunk is None:
                self.stats.dropped_before_keyframe += 1
            else:
                self.chunk.packets.append(packet)
        elif packet.keyframe:
            if self.chunk is not None and self._cut_at(packet):
                actions.append(self._close(packet.wall_time))
            if self.chunk is None:
                actions += self._start(packet)
            else:
                self.chunk.packets.append(packet)
        elif self.chunk is None:
            self.stats.dropped_before_keyframe += 1
        else:
            self.chunk.packets.append(packet)
        self._consumed(ack)
        return actions

    def on_skipped(self, ack: Any) -> None:
        """A message that is not for the chunker (undecodable): settled with the chunk it falls in."""
        self._consumed(ack)

    def tick(self, now: float) -> list[Action]:
        """Note the passing of time; a stall closes the open chunk and opens a gap."""
        if self._fresh:
            self._fresh, self._last_activity = False, now
            return []
        if not self.stall_due(now):
            return []
        self.stats.stalls += 1
        return self._break(f"no packets for {self.stall_timeout_s:g}s")

    def stall_due(self, now: float) -> bool:
        """Whether `tick(now)` would break for a stall (no packet for `stall_timeout_s`, something open)."""
        if self._fresh or now - self._last_activity < self.stall_timeout_s:
            return False
        return not (self.chunk is None and (self.tail is None or self.gap is not None))

    def keepalive(self, now: float) -> None:
        """Time passes without packets for a reason that is not the camera's (the caller holds back
        delivery, e.g. while uploads are pending): do not count it towards a stall."""
        self._fresh, self._last_activity = False, now

    def cut(self, reason: str) -> list[Action]:
        """Close the open chunk now, at its last packet, opening a gap (e.g. it grew too large)."""
        return self._break(reason)

    @property
    def open_packets(self) -> int:
        return len(self.chunk.packets) if self.chunk else 0

    # -- internals ------------------------------------------------------------------------------

    def _consumed(self, ack: Any) -> None:
        if ack is not None:
            self.last_ack = ack

    def _already_stored(self, packet: Packet) -> bool:
        # After a restart from a gap whose chunk's last seq is unknown: that chunk ends at tail.end.
        tail = self.tail
        return (self.chunk is None and tail is not None and tail.last_seq is None and packet.session == tail.session
                and packet.wall_time < tail.end - TIME_TOLERANCE_S)

    def _cut_at(self, keyframe: Packet) -> bool:
        assert self.chunk is not None
        due = keyframe.wall_time >= self.chunk.start + self.segment_seconds - TIME_TOLERANCE_S
        return due or len(self.chunk.packets) >= self.max_packets

    def _start(self, keyframe: Packet) -> list[Action]:
        assert self.info is not None
        self.chunk = _Open(self.info, keyframe.wall_time, [keyframe])
        if self.gap is None:
            return []
        closed = self.gap.model_copy(update={"end": max(keyframe.wall_time, self.gap.start)})
        self.gap = None
        return [AnnounceGap(closed)]

    def _close(self, end: float) -> CloseChunk:
        assert self.chunk is not None
        chunk, self.chunk = self.chunk, None
        plan = ChunkPlan(self.camera, chunk.info, tuple(chunk.packets), chunk.start, max(end, chunk.start),
                         self.last_ack)
        self.tail = Tail(plan.session, plan.end, plan.last_seq)
        self.stats.chunks += 1
        return CloseChunk(plan)

    def _break(self, reason: str) -> list[Action]:
        actions: list[Action] = []
        if self.chunk is not None:
            actions.append(self._close(_end_of_last_frame(self.chunk)))
        if self.gap is None and self.tail is not None:
            self.gap = Gap.create(camera=self.camera, start=self.tail.end, end=None, reason=reason[:200],
                                  session=self.tail.session or None)
            actions.append(AnnounceGap(self.gap))
        return actions


def _end_of_last_frame(chunk: _Open) -> float:
    """Wall time the chunk's last video frame ends: its duration, else the frame interval before it,
    else the nominal frame rate. The last frame shown, not the last decoded: with B-frames they differ."""
    video = sorted((p for p in chunk.packets if p.track == "video"), key=lambda p: p.wall_time)
    last = video[-1]
    if last.duration > 0:
        return last.wall_time + float(last.duration * Fraction(*chunk.info.video.time_base))
    if len(video) >= 2 and video[-1].wall_time > video[-2].wall_time:
        return last.wall_time + (video[-1].wall_time - video[-2].wall_time)
    if chunk.info.video.fps:
        return last.wall_time + 1.0 / chunk.info.video.fps
    return last.wall_time
