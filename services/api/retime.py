"""Segments on their playlist's timeline. A stored chunk's timestamps start at 0, so a playlist of chunks starts
its media timeline over at every segment. FFmpeg's HLS demuxer (ffmpeg, ffplay, mpv) takes that as it comes and
loses each later chunk's first GOP (75 of 120 frames decoded from four 2 s chunks); hls.js guesses its way around
it (it logs a timestamp "remapping" at every segment) and, at a discontinuity, first appends the segment at its
raw time, over what is buffered there. So a segment is served with every fragment's decode time (`tfdt`) moved by
the segment's position in its playlist, the sum of the EXTINFs before it, which its URI carries
(`segments/at/<ms>/<tail>`): media time = playlist time, continuous across chunks, sessions and gaps, as both
players' own timelines are; the wall clock comes from `EXT-X-PROGRAM-DATE-TIME`. (Moved to Unix time instead,
hls.js 1.7.4 appended every discontinuity's first segment once at that time too: a stray buffered range decades
away, and `ended` never fired.)

Only bytes that hold times change, in place, so a segment keeps the stored object's size: each `moof`'s `tfdt`
(64-bit, as FFmpeg's muxer writes it), and the `mfra` index (moof offsets and times on the stored timeline, of no
use to an HLS player) becomes a `free` box; at position 0 nothing changes. Pure functions over box bytes;
`media.py` feeds them box by box from the S3 stream (`Retimer`), so a chunk is never held whole."""

from collections.abc import Mapping

from spectare.media.fmp4 import Box, Mp4Error, boxes, children

HEADER_BYTES = 16  # the longest top-level box header that matters here (a 64-bit size)
MAX_INDEX_BOX = 16 * 1024 * 1024  # a moov, moof or mfra this large is no chunk of ours


def box_header(data: bytes | bytearray | memoryview) -> tuple[str, int | None, int] | None:
    """(type, whole size or None for "to the end", header length) of the box at the start of data; None when data
    is too short to tell."""
    if len(data) < 8:
        return None
    size, kind = int.from_bytes(data[:4], "big"), bytes(data[4:8]).decode("latin-1")
    if size == 1:
        if len(data) < 16:
            return None
        return kind, int.from_bytes(data[8:16], "big"), 16
    if size == 0:
        return kind, None, 8
    if size < 8:
        raise Mp4Error(f"box {kind!r} claims {size} bytes, less than its header")
    return kind, size, 8


def _only(data: bytes, kind: str) -> Box:
    top = boxes(data)
    if len(top) != 1 or top[0].type != kind:
        raise Mp4Error(f"expected one {kind!r} box, got {[b.type for b in top]}")
    return top[0]


def _child(data: bytes, parent: Box, kind: str) -> Box:
    for box in children(data, parent):
        if box.type == kind:
            return box
    raise Mp4Error(f"no {kind!r} box in {parent.type!r}")


def track_timescales(moov: bytes) -> dict[int, int]:
    """track_ID -> media timescale (`mdhd`) of each track of a `moov` box (its bytes alone)."""
    found: dict[int, int] = {}
    for trak in children(moov, _only(moov, "moov")):
        if trak.type != "trak":
            continue
        tkhd = _child(moov, trak, "tkhd")
        at = tkhd.body.start
        track_id = int.from_bytes(moov[at + (20 if moov[at] == 1 else 12):][:4], "big")
        mdhd = _child(moov, _child(moov, trak, "mdia"), "mdhd")
        at = mdhd.body.start
        timescale = int.from_bytes(moov[at + (20 if moov[at] == 1 else 12):][:4], "big")
        if timescale <= 0:
            raise Mp4Error(f"track {track_id} has timescale {timescale}")
        found[track_id] = timescale
    if not found:
        raise Mp4Error("the moov has no track")
    return found


def offsets_at(timescales: Mapping[int, int], at_ms: int) -> dict[int, int]:
    """Per track, the ticks that move a chunk by at_ms milliseconds."""
    return {track: at_ms * timescale // 1000 for track, timescale in timescales.items()}


def shift_moof(moof: bytes, offsets: Mapping[int, int]) -> bytes:
    """The `moof` box with each track fragment's base decode time moved by its track's offset."""
    top = _only(moof, "moof")
    out = bytearray(moof)
    for traf in children(moof, top):
        if traf.type != "traf":
            continue
        tfhd = _child(moof, traf, "tfhd")
        track_id = int.from_bytes(moof[tfhd.body.start + 4:tfhd.body.start + 8], "big")
        if track_id not in offsets:
            raise Mp4Error(f"a fragment of track {track_id}, which the moov does not have")
        tfdt = _child(moof, traf, "tfdt")
        width = 8 if moof[tfdt.body.start] == 1 else 4
        at = tfdt.body.start + 4
        moved = int.from_bytes(moof[at:at + width], "big") + offsets[track_id]
        if moved >= 1 << (8 * width):
            raise Mp4Error(f"a {8 * width}-bit decode time cannot hold the moved time (track {track_id})")
        out[at:at + width] = moved.to_bytes(width, "big")
    return bytes(out)


def as_free(box: bytes) -> bytes:
    """The box turned into a `free` box of the same size (its content left, ignored by every reader)."""
    return box[:4] + b"free" + box[8:]  # the type follows the 32-bit size field, whatever the size's width


class Retimer:
    """Top-level boxes of one fragmented chunk in file order -> the same boxes `at_ms` later: the `moov` gives the
    tracks' timescales, every later `moof` is shifted, the `mfra` turned to `free`, anything else (`ftyp`, `mdat`)
    passes as it is."""

    RETIMED = frozenset({"moov", "moof", "mfra"})  # the boxes `feed` must be given whole

    def __init__(self, at_ms: int) -> None:
        self.at_ms = at_ms
        self.offsets: dict[int, int] | None = None

    def feed(self, kind: str, box: bytes) -> bytes:
        if kind == "moov":
            self.offsets = offsets_at(track_timescales(box), self.at_ms)
        elif self.at_ms == 0:
            return box
        elif kind == "moof":
            if self.offsets is None:
                raise Mp4Error("a moof before the moov: not a self-contained chunk")
            return shift_moof(box, self.offsets)
        elif kind == "mfra":
            return as_free(box)
        return box


def retime(data: bytes, at_ms: int) -> bytes:
    """A whole fragmented chunk moved at_ms later (what `Retimer` does box by box)."""
    retimer = Retimer(at_ms)
    return b"".join(retimer.feed(b.type, data[b.offset:b.end]) for b in boxes(data))
