"""One session's audio: the camera's audio units -> AAC packets with their time on the session's wall clock.

AAC is copied. G.711 (PCMU/PCMA) is transcoded here, in ingest, with one encoder for the whole session (FFmpeg's
AAC encoder through PyAV, 32 kbit/s at the camera's rate): the bus then carries AAC only, so the segmenter,
clips, HLS and live all copy it, a chunk rebuilt after a crash is byte-identical (it is made from the same packets),
and the audio stays continuous across chunk seams (a per-chunk encoder would restart its priming at every seam).
Its cost (bench/results/recording-audio.md: ~0.5 CPU-s per camera-minute) is under 1 % of a core per camera.

Time: every packet's pts counts samples (time base 1/sample rate) and its wall time is
`anchor wall + (pts - anchor pts) / rate`. The anchor is the video's (`video_anchor`) when the source puts both
tracks on one timeline (FFmpeg); otherwise (Spectare's RTSP client, whose RTP clocks start anywhere) it is the first
audio unit's receipt, taken in the same socket read as the video around it. Either way audio advances by its own
sample clock, so it cannot drift from the camera's.
"""

from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av
from av.audio.codeccontext import AudioCodecContext

from spectare.schemas import AudioTrack

from .media import AudioInfo, AudioUnits
from .rtpaudio import AAC_FRAME_SAMPLES

G711_AAC_BIT_RATE = 32000
# A hole in G.711 up to this long (lost packets) is filled with silence so later audio keeps its time; a longer
# one restarts the sample count there.
_MAX_SILENCE_S = 1.0


@dataclass(frozen=True, slots=True)
class TimedAudio:
    """Raw AAC access units back to back, on the session's wall clock: unit n at `pts + n * duration` samples."""

    pts: int  # samples, of the first
    duration: int  # samples, of each
    units: tuple[bytes, ...]
    wall_time: float  # of the first
    rate: int  # samples a second

    def wall_at(self, n: int) -> float:
        return self.wall_time + n * self.duration / self.rate

    @property
    def last_wall(self) -> float:
        return self.wall_at(len(self.units) - 1)

    def split(self, n: int) -> tuple["TimedAudio", "TimedAudio"]:
        """The first `n` units, and the rest (0 < n < len(units))."""
        return (TimedAudio(self.pts, self.duration, self.units[:n], self.wall_time, self.rate),
                TimedAudio(self.pts + n * self.duration, self.duration, self.units[n:], self.wall_at(n), self.rate))


class AudioError(Exception):
    """The audio track cannot be recorded (its transcoder would not open)."""


class AudioPath:
    """Audio units of one session -> TimedAudio runs, in order."""

    def __init__(self, info: AudioInfo) -> None:
        self.info = info
        self.rate = info.sample_rate
        self._transcoder = None if info.codec == "aac" else _G711ToAac(info)
        extradata = info.extradata if self._transcoder is None else self._transcoder.extradata
        self.track = AudioTrack(codec="aac", sample_rate=self.rate, channels=info.channels,
                                time_base=(1, self.rate), extradata=extradata)
        scale = info.time_base * self.rate  # source ticks -> samples: 1 for RTP (its clock is the sample rate)
        self._scale: int | Fraction = scale.numerator if scale.denominator == 1 else scale  # ints: ~50 units/s
        self._anchor: tuple[float, int] | None = None  # (wall, samples) where the audio is placed
        self.dropped_before_video = 0
        self.transcoded = 0

    @property
    def anchored(self) -> bool:
        """Whether the audio's place on the wall clock is fixed (later pushes need no video anchor)."""
        return self._anchor is not None

    def push(self, units: AudioUnits, video_anchor: tuple[float, float] | None) -> list[TimedAudio]:
        """`video_anchor`: (wall time, media seconds) of the video's first timed packet, None until there is one."""
        samples = round(units.pts * self._scale)
        if self._anchor is None:
            if self.info.shared_timeline:
                if video_anchor is None:
                    self.dropped_before_video += len(units.units)
                    return []
                wall, seconds = video_anchor
                self._anchor = (wall, round(Fraction(seconds) * self.rate))
            else:
                self._anchor = (units.received, samples)
        duration = round(units.duration * self._scale)
        if self._transcoder is None:
            return [self._timed(samples, duration or AAC_FRAME_SAMPLES, units.units)]
        encoded: list[tuple[int, bytes]] = []
        for n, data in enumerate(units.units):
            encoded += self._transcoder.push(samples + n * duration, data)
        self.transcoded += len(encoded)
        out: list[TimedAudio] = []
        frame, start = self._transcoder.frame, 0  # the encoder's frames, in runs of consecutive ones
        for n in range(1, len(encoded) + 1):
            if n == len(encoded) or encoded[n][0] != encoded[n - 1][0] + frame:
                out.append(self._timed(encoded[start][0], frame, tuple(d for _, d in encoded[start:n])))
                start = n
        return out

    def _timed(self, pts: int, duration: int, units: tuple[bytes, ...]) -> TimedAudio:
        assert self._anchor is not None
        wall, origin = self._anchor
        return TimedAudio(pts, duration, units, wall + (pts - origin) / self.rate, self.rate)


class _G711ToAac:
    """G.711 sample runs (with their first sample's position) -> AAC access units (pts in samples)."""

    def __init__(self, info: AudioInfo) -> None:
        layout = "mono" if info.channels == 1 else "stereo"
        try:
            self.decoder = cast(AudioCodecContext, av.CodecContext.create(info.codec, "r"))
            self.decoder.sample_rate, self.decoder.layout = info.sample_rate, layout
            self.encoder = av.CodecContext.create("aac", "w")
            self.encoder.sample_rate, self.encoder.layout, self.encoder.format = info.sample_rate, layout, "fltp"
            self.encoder.bit_rate = G711_AAC_BIT_RATE
            self.encoder.time_base = Fraction(1, info.sample_rate)
            self.encoder.open()
        except (av.FFmpegError, ValueError) as exc:
            raise AudioError(f"cannot transcode {info.codec} to AAC: {exc}") from None
        self.extradata = bytes(self.encoder.extradata or b"")
        self.rate = info.sample_rate
        self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=info.sample_rate)
        self.fifo = av.AudioFifo()
        self.next_in: int | None = None  # position of the next sample expected from the camera
        self.next_out = 0  # position of the first sample in the fifo
        self.frame = self.encoder.frame_size or AAC_FRAME_SAMPLES
        self.silence = b"\xff" if info.codec == "pcm_mulaw" else b"\xd5"  # G.711's zero

    def push(self, position: int, data: bytes) -> list[tuple[int, bytes]]:
        channels = len(self.encoder.layout.channels)
        if self.next_in is not None:
            hole = position - self.next_in
            if hole < 0:
                return []  # overlaps what was already encoded (a repeat): dropped
            if 0 < hole <= _MAX_SILENCE_S * self.rate:
                data = self.silence * (hole * channels) + data
                position = self.next_in
            elif hole:
                self.fifo = av.AudioFifo()  # too long a hole: count from here (the queued tail is dropped)
                self.next_in = None
        if self.next_in is None:
            self.next_out = position - self.fifo.samples
        self.next_in = position + len(data) // channels
        for frame in self.decoder.decode(av.Packet(data)):
            for resampled in self.resampler.resample(frame):
                resampled.pts = None  # the fifo counts samples itself
                self.fifo.write(resampled)
        out: list[tuple[int, bytes]] = []
        while self.fifo.samples >= self.frame:
            block = self.fifo.read(self.frame)
            assert block is not None  # the fifo holds enough samples
            block.pts, block.time_base = self.next_out, self.encoder.time_base
            self.next_out += self.frame
            out += [(packet.pts or 0, bytes(packet)) for packet in self.encoder.encode(block)]
        return out
