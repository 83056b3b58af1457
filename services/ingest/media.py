"""What every camera source gives ingest, whichever client reads the camera."""

from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from .timing import RawPacket

# Codecs whose packets Spectare records and remuxes into MP4 chunks.
VIDEO_CODECS = ("h264", "hevc")
# Audio codecs Spectare records: AAC as it comes, G.711 transcoded to AAC (MP4 and browsers do not play G.711).
AUDIO_CODECS = ("aac", "pcm_mulaw", "pcm_alaw")


@dataclass(frozen=True)
class AudioInfo:
    """A camera's audio track as its source reads it (before any transcoding)."""

    codec: str  # FFmpeg name: aac, pcm_mulaw, pcm_alaw
    sample_rate: int
    channels: int
    time_base: Fraction  # of AudioUnits.pts
    extradata: bytes  # AAC: the AudioSpecificConfig
    # Whether AudioUnits.pts and the video's pts count from one origin (FFmpeg lines its streams up, from RTCP for
    # RTSP); otherwise each RTP clock starts anywhere and the audio is placed by its own first packet's receipt.
    shared_timeline: bool


@dataclass(frozen=True, slots=True)
class AudioUnits:
    """Audio packets as the camera gave them, back to back in time, read together: AAC access units, or G.711
    sample runs; unit n starts at `pts + n * duration`."""

    pts: int  # of the first, in AudioInfo.time_base
    duration: int  # of each, in AudioInfo.time_base; 0 when unknown (then there is one unit)
    units: tuple[bytes, ...]
    received: float  # wall clock at receipt

    @property
    def size(self) -> int:
        return sum(map(len, self.units))


@dataclass(frozen=True)
class SourceInfo:
    codec: str
    width: int
    height: int
    time_base: Fraction
    extradata: bytes
    fps: float | None
    audio: AudioInfo | None = None  # the audio track the source delivers (AudioUnits), if any
    audio_skipped: str | None = None  # why the camera's audio track is not delivered, if it has one


class SourceEnded(Exception):
    """The camera closed the stream or stopped sending (read timeout)."""


class Source(Protocol):
    """One open connection to a camera."""

    info: SourceInfo

    async def next(self) -> RawPacket | AudioUnits:
        """The next packet (video, or audio when `info.audio`); raises SourceEnded when the connection is over."""

    async def close(self) -> None: ...

    def losses(self) -> dict[str, int]:
        """What the connection lost on the way (counter name -> count), added to ingest's tallies."""
