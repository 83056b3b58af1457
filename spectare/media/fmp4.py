"""Fragmented MP4 (the CMAF layout every chunk is stored in): the top-level ISO-BMFF boxes of a file, whether it is
fragmented, its init part and its media part, and the remux of an old plain MP4 chunk into the same layout.

A chunk the segmenter writes is one standalone file: `ftyp`, a `moov` with no samples (`empty_moov`) and an `mvex`,
then one `moof`+`mdat` pair per GOP (`frag_keyframe`), each `moof` addressing its data from its own start
(`default_base_moof`), then an `mfra` index (absolute offsets, so it belongs to the file, not to the media part).
Players open it as a file; HLS and MSE take `ftyp`+`moov` as the init segment and the `moof`+`mdat` pairs as media.
Chunks stored before that are plain MP4 (`ftyp`, `mdat`, `moov` at the end), which MSE refuses.

Box walking is pure and needs no PyAV; `to_fragmented` imports PyAV when it is called.
"""

import io
from dataclasses import dataclass

from spectare.core.errors import SpectareError

# The muxer options of every stored chunk: fragments as above, and `+bitexact` so that the same packets always give
# the same bytes (no muxer version or creation time written).
FRAGMENTED_MP4_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "fflags": "+bitexact"}

_CONTAINERS = {"moov", "trak", "mdia", "minf", "stbl", "mvex", "moof", "traf", "edts", "dinf", "udta", "mfra"}


class Mp4Error(SpectareError, ValueError):
    """Bytes that are not a well-formed MP4 of the kind asked for (truncated, garbage, not fragmented)."""


@dataclass(frozen=True)
class Box:
    """One ISO-BMFF box: its four-character type, where it starts in the data and its whole size (header included)."""

    type: str
    offset: int
    size: int
    header: int  # 8, 16 with a 64-bit size, 16 more for a `uuid` box's user type

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def body(self) -> slice:
        return slice(self.offset + self.header, self.end)


def boxes(data: bytes | memoryview, start: int = 0, end: int | None = None) -> list[Box]:
    """The boxes laid end to end in data[start:end] (the top level by default); raises Mp4Error where one is cut
    short or its size cannot be."""
    end = len(data) if end is None else end
    found: list[Box] = []
    at = start
    while at < end:
        if end - at < 8:
            raise Mp4Error(f"{end - at} stray bytes at offset {at}: too short for a box header")
        size = int.from_bytes(data[at:at + 4], "big")
        kind = bytes(data[at + 4:at + 8]).decode("latin-1")
        header = 8
        if size == 1:  # the size follows the type, as 64 bits
            if end - at < 16:
                raise Mp4Error(f"box {kind!r} at offset {at} is cut off in its 64-bit size")
            size, header = int.from_bytes(data[at + 8:at + 16], "big"), 16
        elif size == 0:  # the box runs to the end (allowed for the last one, typically an mdat)
            size = end - at
        if kind == "uuid":
            header += 16
        if size < header:
            raise Mp4Error(f"box {kind!r} at offset {at} claims {size} bytes, less than its {header}-byte header")
        if at + size > end:
            raise Mp4Error(f"box {kind!r} at offset {at} claims {size} bytes but only {end - at} remain (truncated)")
        found.append(Box(kind, at, size, header))
        at += size
    return found


def children(data: bytes | memoryview, box: Box) -> list[Box]:
    """The boxes inside a container box (`moov`, `trak`, `moof`, ...)."""
    if box.type not in _CONTAINERS:
        raise Mp4Error(f"box {box.type!r} holds no boxes")
    return boxes(data, box.body.start, box.end)


def is_fragmented(data: bytes | memoryview) -> bool:
    """Whether the file is fragmented MP4: its `moov` announces fragments (`mvex`) or a `moof` follows."""
    top = boxes(data)
    if any(b.type == "moof" for b in top):
        return True
    return any(c.type == "mvex" for b in top if b.type == "moov" for c in children(data, b))


def split(data: bytes) -> tuple[bytes, bytes]:
    """A fragmented MP4 as (init, media): `ftyp`+`moov` (every box before the first `moof`) and the `moof`+`mdat`
    pairs, with anything between them (`styp`, `sidx`, `free`); the `mfra` index after the last pair is left out,
    its offsets being the file's."""
    top = boxes(data)
    first = next((i for i, b in enumerate(top) if b.type == "moof"), None)
    if first is None:
        raise Mp4Error("not a fragmented MP4: no moof box")
    init = top[:first]
    if not any(b.type == "moov" for b in init):
        raise Mp4Error("no moov box before the first moof")
    media = [b for b in top[first:] if b.type == "mdat"]
    if not media:
        raise Mp4Error("no mdat box after the first moof")
    return data[:top[first].offset], data[top[first].offset:media[-1].end]


def to_fragmented(data: bytes) -> bytes:
    """The MP4 remuxed (no transcode) into the fragmented layout the segmenter writes, with the same video and audio
    packets and timestamps (but for an audio track starting after the video: an empty moov has no edit list, so its
    first frame moves to 0, lengthened by as much); a file already fragmented comes back as it is. Other tracks are
    left out."""
    if is_fragmented(data):  # also walks the boxes: a truncated file fails here with the box named
        return data
    if not any(b.type == "moov" for b in boxes(data)):
        raise Mp4Error("no moov box: not an MP4, or one cut off before its end")
    import av  # deferred: see the module docstring

    try:
        with av.open(io.BytesIO(data), "r", format="mov") as source:
            tracks = [s for s in source.streams if s.type in ("video", "audio")]
            if not any(s.type == "video" for s in tracks):
                raise Mp4Error("the MP4 has no video track")
            out = io.BytesIO()
            with av.open(out, "w", format="mp4", container_options=FRAGMENTED_MP4_OPTIONS) as target:
                streams = {}
                for track in tracks:
                    stream = target.add_stream_from_template(track)
                    stream.time_base = track.time_base
                    # Not the old file's average: the segmenter's video streams carry no bit rate (no `btrt`
                    # box), so an old video-only chunk comes out byte for byte as the segmenter writes it now.
                    stream.codec_context.bit_rate = 0
                    streams[track.index] = stream
                for packet in source.demux(*tracks):
                    if packet.size == 0:  # the demuxer's end-of-stream marker
                        continue
                    packet.stream = streams[packet.stream.index]
                    target.mux(packet)
    except av.FFmpegError as exc:
        raise Mp4Error(f"cannot remux the MP4 into fragments: {exc}") from None
    return out.getvalue()
