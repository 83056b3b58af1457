"""Clip export: the recorded chunks covering a time range, remuxed (never transcoded) into one MP4 cut to it.

How exact: a clip must start on a keyframe to play, so it starts at the last keyframe at or before the
requested start, up to one GOP early (1 s on a camera with a 1 s GOP); `Clip.start` says where it
really starts. It ends with the last frame that begins before the requested end, so the end is exact
to the frame. A gap between chunks (camera down) stays a jump in time inside the clip, so the clip's
timeline matches the wall clock; players hold the last picture over it.

Audio (AAC, copied) comes along: each audio packet is placed by its wall time (the chunk's start plus its offset
from the chunk's first frame) and kept when it starts inside the clip; at a seam, a packet that would overlap the
previous chunk's last one (a chunk's first audio frame is moved to its start, up to one frame early) is moved just
after it, so the clip's audio runs on without a hole or an overlap.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from spectare.core.errors import NotFoundError, SpectareError


class ClipError(SpectareError):
    """A chunk that cannot be read while exporting a clip (named)."""


@dataclass(frozen=True)
class ChunkFile:
    """A downloaded chunk and the wall times (Unix seconds) of its first frame and its end."""

    path: Path
    start: float
    end: float


@dataclass(frozen=True)
class Clip:
    path: Path
    start: float  # wall time of the first frame (a keyframe at or before the requested start)
    end: float  # wall time the last frame ends
    frames: int
    chunks: int  # chunks that contributed


def covering(chunks: Sequence[ChunkFile], start: float, end: float) -> list[ChunkFile]:
    """The chunks overlapping [start, end), in time order."""
    return sorted((c for c in chunks if c.end > start and c.start < end), key=lambda c: c.start)


def export_clip(chunks: Sequence[ChunkFile], start: float, end: float, out: Path,
                progress: Callable[[ChunkFile], None] = lambda _c: None) -> Clip:
    """Write the MP4 of [start, end) made from `chunks` to `out`; `progress` is called after each chunk."""
    if end <= start:
        raise SpectareError("the clip's end must be after its start")
    used = covering(chunks, start, end)
    if not used:
        raise NotFoundError("no recorded footage in that range")
    writer = _ClipWriter(out, start, end)
    try:
        for chunk in used:
            writer.add(chunk)
            progress(chunk)
    finally:
        writer.close()
    if writer.frames == 0:
        out.unlink(missing_ok=True)
        raise NotFoundError("no recorded frame in that range")
    return Clip(out, writer.origin, writer.last_end, writer.frames, writer.chunks)


class _ClipWriter:
    def __init__(self, out: Path, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.output = av.open(str(out), "w", format="mp4")
        self.stream: av.VideoStream | None = None
        self.time_base: Fraction | None = None
        self.audio: av.AudioStream | None = None
        self.next_audio = 0  # ticks of the audio time base: where the next audio packet may start
        self.origin = math.nan  # wall time at clip time 0: the first frame written
        self.next_dts = 0  # ticks: every later packet decodes at or after this
        self.last_end = math.nan
        self.frames = 0
        self.chunks = 0

    def add(self, chunk: ChunkFile) -> None:
        try:
            source = av.open(str(chunk.path))
        except av.FFmpegError as exc:
            raise ClipError(f"chunk {chunk.path.name} cannot be read: {exc}") from None
        with source:
            if not source.streams.video:
                raise ClipError(f"chunk {chunk.path.name} has no video")
            video = source.streams.video[0]
            audio = source.streams.audio[0] if source.streams.audio else None
            packets: list[av.Packet] = []
            sounds: list[av.Packet] = []
            for p in source.demux(*([video, audio] if audio is not None else [video])):
                if p.size and p.pts is not None:
                    (packets if p.stream is video else sounds).append(p)
            if not packets:
                return
            tb = video.time_base
            if tb is None:
                raise ClipError(f"chunk {chunk.path.name} has no video time base")
            if self.stream is None:
                self.stream = self.output.add_stream_from_template(video)
                self.time_base = tb
                if audio is not None and audio.codec_context.name == "aac":
                    self.audio = self.output.add_stream_from_template(audio)
            first_pts = min(_pts(p) for p in packets)

            def wall(ticks: int) -> float:
                return chunk.start + float((ticks - first_pts) * tb)

            begin = 0
            if math.isnan(self.origin):  # the clip starts at the last keyframe at or before `start`
                keyframes = [i for i, p in enumerate(packets) if p.is_keyframe and wall(_pts(p)) <= self.start]
                begin = keyframes[-1] if keyframes else next((i for i, p in enumerate(packets) if p.is_keyframe), 0)
                self.origin = wall(_pts(packets[begin]))
            shift = self._shift(chunk, first_pts, tb)
            wrote = False
            for packet in packets[begin:]:
                decode_ticks = packet.dts if packet.dts is not None else _pts(packet)
                if wall(decode_ticks) >= self.end:
                    break
                duration = packet.duration or 0
                pts, dts = _pts(packet) + shift, decode_ticks + shift
                packet.pts, packet.dts = pts, dts
                packet.time_base = tb
                packet.stream = self.stream
                self.output.mux(packet)
                self.next_dts = dts + max(duration, 1)
                self.last_end = self.origin + float((pts + duration) * tb)
                self.frames += 1
                wrote = True
            if wrote and audio is not None and self.audio is not None:
                self._add_audio(sounds, chunk.start - float(first_pts * tb), audio)
            self.chunks += wrote

    def _add_audio(self, packets: list[av.Packet], wall_origin: float, stream: av.AudioStream) -> None:
        """The chunk's audio packets that start inside the clip; `wall_origin`: wall time of the chunk's tick 0."""
        assert self.audio is not None
        tb = stream.time_base
        if tb is None:
            raise ClipError("a chunk's audio has no time base")
        frame = round(Fraction(stream.codec_context.frame_size or 1024, stream.codec_context.sample_rate) / tb)
        for i, packet in enumerate(packets):
            start, duration = _pts(packet), packet.duration or frame
            if i == 0 and duration > frame:  # moved to the chunk's start and lengthened by the muxer: undone
                start, duration = start + duration - frame, frame
            wall = wall_origin + float(start * tb)
            if wall < self.origin or wall >= self.end:
                continue
            at = max(round((wall - self.origin) / tb), self.next_audio)
            packet.pts = packet.dts = at
            packet.duration, packet.time_base = duration, tb
            packet.stream = self.audio
            self.output.mux(packet)
            self.next_audio = at + duration

    def _shift(self, chunk: ChunkFile, first_pts: int, tb: Fraction) -> int:
        """Ticks to add to this chunk's timestamps: where it starts on the clip's timeline (its wall start),
        never before the end of what is already written."""
        at = round((chunk.start - self.origin) / tb)
        return (at if self.frames == 0 else max(at, self.next_dts)) - first_pts

    def close(self) -> None:
        self.output.close()


def _pts(packet: av.Packet) -> int:
    """A demuxed packet's pts: packets without one are left out before this is asked."""
    assert packet.pts is not None
    return packet.pts
