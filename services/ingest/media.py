"""What every camera source gives ingest, whichever client reads the camera."""

from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol

from .timing import RawPacket

# Codecs whose packets Spectare records and remuxes into MP4 chunks.
VIDEO_CODECS = ("h264", "hevc")


@dataclass(frozen=True)
class SourceInfo:
    codec: str
    width: int
    height: int
    time_base: Fraction
    extradata: bytes
    fps: float | None
    audio: str | None  # codec name of an audio track that is not recorded, if any


class SourceEnded(Exception):
    """The camera closed the stream or stopped sending (read timeout)."""


class Source(Protocol):
    """One open connection to a camera."""

    info: SourceInfo

    async def next(self) -> RawPacket:
        """The next video packet; raises SourceEnded when the connection is over."""

    async def close(self) -> None: ...

    def losses(self) -> dict[str, int]:
        """What the connection lost on the way (counter name -> count), added to ingest's tallies."""
