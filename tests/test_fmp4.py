"""spectare.media.fmp4 on real MP4s cut from the demo footage: the segmenter's fragmented chunks, the same chunks
as the plain MP4s it stored before (moov at the end, its previous muxer options), and ffmpeg's own. Box walking
(64-bit and to-the-end sizes too), malformed and truncated input (one Mp4Error, never another exception), the
init/media split, and `to_fragmented` giving the segmenter's layout with the same packets, frames and timestamps."""

import hashlib
import io
import subprocess
from dataclasses import dataclass

import av
import pytest

from spectare.media.fmp4 import Box, Mp4Error, boxes, children, is_fragmented, split, to_fragmented
from spectare.segmenter.remux import Remuxer

from .packets import PLAIN_MP4_OPTIONS, check_mp4, load_clip, plans_of, with_tone


@dataclass(frozen=True)
class Files:
    fragmented: bytes  # a 2 s chunk as the segmenter writes it: two 1 s GOPs
    fragmented_av: bytes  # another with an AAC track
    plain: bytes  # the first chunk as the segmenter stored it before (plain MP4, moov at the end)
    plain_av: bytes
    ffmpeg_plain: bytes  # `ffmpeg -c copy` of 2 s of the camera clip: a plain MP4 from another muxer user


@pytest.fixture(scope="module")
def files(camera_clip, tmp_path_factory) -> Files:
    folder = tmp_path_factory.mktemp("fmp4")
    plan = plans_of(load_clip(camera_clip))[3]
    plan_av = plans_of(load_clip(with_tone(camera_clip, folder / "av.mp4")))[1]
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(camera_clip), "-c", "copy", "-t", "2",
                    str(folder / "plain.mp4")], check=True, timeout=60)
    fragmented, plain = Remuxer(), Remuxer(PLAIN_MP4_OPTIONS)
    return Files(fragmented.remux(plan).data, fragmented.remux(plan_av).data, plain.remux(plan).data,
                 plain.remux(plan_av).data, (folder / "plain.mp4").read_bytes())


def wide_mdat(plain: bytes) -> bytes:
    """The plain MP4 with its `free`+`mdat` headers rewritten as one 64-bit-size `mdat` header (what the muxer
    reserves the `free` box for): same offsets, so it still plays."""
    top = boxes(plain)
    free, mdat = top[1], top[2]
    assert (free.type, free.size, mdat.type, mdat.header) == ("free", 8, "mdat", 8)
    header = (1).to_bytes(4, "big") + b"mdat" + (mdat.size + 8).to_bytes(8, "big")
    return plain[:free.offset] + header + plain[mdat.offset + 8:]


def last_box_to_the_end(data: bytes) -> bytes:
    """The file with its last box's size written as 0 ("to the end of the file")."""
    last = boxes(data)[-1]
    return data[:last.offset] + bytes(4) + data[last.offset + 4:]


def box(kind: bytes, body: bytes = b"") -> bytes:
    return (8 + len(body)).to_bytes(4, "big") + kind + body


FTYP = box(b"ftyp", b"isom" + bytes(4) + b"isomiso6")


@pytest.mark.parametrize(("make", "expected"), [
    (lambda f: f.plain, [("ftyp", 8), ("free", 8), ("mdat", 8), ("moov", 8)]),
    (lambda f: f.ffmpeg_plain, [("ftyp", 8), ("free", 8), ("mdat", 8), ("moov", 8)]),
    (lambda f: f.fragmented, [("ftyp", 8), ("moov", 8)] + [("moof", 8), ("mdat", 8)] * 2 + [("mfra", 8)]),
    (lambda f: wide_mdat(f.plain), [("ftyp", 8), ("mdat", 16), ("moov", 8)]),
    (lambda f: last_box_to_the_end(f.fragmented), [("ftyp", 8), ("moov", 8)] + [("moof", 8), ("mdat", 8)] * 2
     + [("mfra", 8)]),
    (lambda f: b"", []),
    (lambda f: FTYP + box(b"uuid", bytes(16) + b"x") + box(b"free"), [("ftyp", 8), ("uuid", 24), ("free", 8)]),
], ids=["plain", "ffmpeg-plain", "fragmented", "64-bit-size", "size-0-to-the-end", "empty", "uuid"])
def test_top_level_boxes(files, make, expected):
    data = make(files)
    found = boxes(data)
    assert [(b.type, b.header) for b in found] == expected
    assert sum(b.size for b in found) == len(data)
    assert all(a.end == b.offset for a, b in zip(found, found[1:], strict=False)), "laid end to end"


def test_64_bit_size_and_size_0_files_are_read_whole(files):
    wide = wide_mdat(files.plain)
    mdat = boxes(wide)[1]
    assert mdat.size == boxes(files.plain)[2].size + 8 and mdat.offset == 32
    check = check_mp4(wide)
    assert check.frames == 30, "the rewritten header is a valid MP4"
    assert [b.size for b in boxes(last_box_to_the_end(files.fragmented))] == [b.size for b in boxes(files.fragmented)]


def test_children_of_moov_and_moof(files):
    top = {b.type: b for b in boxes(files.fragmented)}
    assert [c.type for c in children(files.fragmented, top["moov"])] == ["mvhd", "trak", "mvex", "udta"]
    assert [c.type for c in children(files.fragmented, top["moof"])] == ["mfhd", "traf"]
    with pytest.raises(Mp4Error, match="holds no boxes"):
        children(files.fragmented, top["mdat"])


@pytest.mark.parametrize(("make", "fragmented"), [
    (lambda f: f.plain, False),
    (lambda f: f.ffmpeg_plain, False),
    (lambda f: wide_mdat(f.plain), False),
    (lambda f: f.fragmented, True),
    (lambda f: f.fragmented_av, True),
    (lambda f: split(f.fragmented)[0], True),  # an init segment alone: its moov has mvex
    (lambda f: FTYP + box(b"moof") + box(b"mdat"), True),
])
def test_is_fragmented(files, make, fragmented):
    assert is_fragmented(make(files)) is fragmented


ALL_READERS = (boxes, is_fragmented, split, to_fragmented)


@dataclass(frozen=True)
class Bad:
    name: str
    make: object  # Files -> bytes
    match: str  # what the error says, whichever function reads it
    readers: tuple = ALL_READERS


BAD = [
    Bad("plain-cut-in-mdat", lambda f: f.plain[:len(f.plain) // 2], "'mdat' at offset 40 claims .*(truncated)"),
    Bad("plain-cut-in-moov", lambda f: f.plain[:-10], "'moov' .*(truncated)"),
    Bad("fragment-cut-in-last-mdat", lambda f: f.fragmented[:boxes(f.fragmented)[-2].end - 100],
        "'mdat' .*(truncated)"),
    Bad("stray-bytes", lambda f: f.fragmented + b"\x00\x00\x01", "3 stray bytes at offset"),
    Bad("size-below-header", lambda f: FTYP + b"\x00\x00\x00\x04moov", "less than its 8-byte header"),
    Bad("cut-64-bit-size", lambda f: FTYP + b"\x00\x00\x00\x01mdat\x00\x00", "cut off in its 64-bit size"),
    Bad("garbage-inside-moov", lambda f: FTYP + box(b"moov", b"\x00\x00\xff\xffjunk"), "'junk' .*(truncated)",
        (is_fragmented, to_fragmented)),  # the top level is sound: only what opens the moov sees it
    Bad("random-bytes", lambda f: hashlib.sha512(b"not an mp4").digest(), "claims .* bytes"),
]


@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
def test_malformed_input_is_one_clear_error(files, bad):
    data = bad.make(files)
    for read in bad.readers:
        with pytest.raises(Mp4Error, match=bad.match):
            read(data)


@pytest.mark.parametrize(("data", "match"), [
    (b"", "no moov box"),
    (FTYP, "no moov box"),
    (FTYP + box(b"moov", box(b"free")), "no video track"),  # boxes fine, but no track in the moov
])
def test_to_fragmented_refuses_what_is_no_mp4(data, match):
    with pytest.raises(Mp4Error, match=match):
        to_fragmented(data)


@pytest.mark.parametrize(("make", "match"), [
    (lambda f: f.plain, "not a fragmented MP4: no moof"),
    (lambda f: FTYP + box(b"moof") + box(b"mdat"), "no moov box before the first moof"),
    (lambda f: split(f.fragmented)[0] + box(b"moof"), "no mdat box after the first moof"),
])
def test_split_refuses_what_is_not_fragmented(files, make, match):
    with pytest.raises(Mp4Error, match=match):
        split(make(files))


def test_split_gives_an_init_part_and_fragments_that_play_after_it(files):
    data = files.fragmented
    init, media = split(data)
    top = boxes(data)
    assert [b.type for b in boxes(init)] == ["ftyp", "moov"]
    assert [b.type for b in boxes(media)] == ["moof", "mdat", "moof", "mdat"]
    assert init + media + data[top[-1].offset:] == data and top[-1].type == "mfra"
    assert check_mp4(init + media).frames == 30
    # Each GOP's fragment plays after the init part alone, at its own time (HLS segments with EXT-X-MAP).
    for first, (moof, mdat) in enumerate([(top[2], top[3]), (top[4], top[5])]):
        fragment = data[moof.offset:mdat.end]
        times = [t for t, _ in decoded(init + fragment)["video"]]
        assert len(times) == 15 and times[0] == pytest.approx(first * 1.0)


def packets(data: bytes) -> dict[str, list[tuple]]:
    """Every packet of each track: time base, pts, dts, duration, keyframe, payload digest."""
    out: dict[str, list[tuple]] = {}
    with av.open(io.BytesIO(data)) as container:
        for p in container.demux():
            if p.size:
                out.setdefault(p.stream.type, []).append(
                    (p.time_base, p.pts, p.dts, p.duration, p.is_keyframe, hashlib.sha1(bytes(p)).digest()))
    return out


def decoded(data: bytes) -> dict[str, list[tuple[float, bytes]]]:
    """Every decoded frame of each track: its time in seconds and a digest of its pixels or samples."""
    out: dict[str, list[tuple[float, bytes]]] = {}
    with av.open(io.BytesIO(data)) as container:
        for stream in container.streams:
            with av.open(io.BytesIO(data)) as again:
                frames = again.decode(again.streams[stream.index])
                out[stream.type] = [(float(f.pts * f.time_base), hashlib.sha1(f.to_ndarray().tobytes()).digest())
                                    for f in frames]
    return out


def moved_to_zero(tracks: dict[str, list[tuple]]) -> dict[str, list[tuple]]:
    """What a fragmented MP4 can say of a track that starts after 0 (an audio packet 48 ms into the chunk): its
    empty moov has no edit list, so FFmpeg moves the first sample to 0 and lengthens it by as much; every other
    sample keeps its time. Applied to `packets` (pts, dts, duration) or `decoded` (time) entries."""
    out = {}
    for kind, entries in tracks.items():
        first = entries[0]
        if len(first) == 2:  # (seconds, digest)
            first = (0.0, first[1])
        elif first[2]:  # (time base, pts, dts, duration, keyframe, digest) starting at dts > 0
            first = (first[0], 0, 0, first[3] + first[2], *first[4:])
        out[kind] = [first, *entries[1:]]
    return out


@pytest.mark.parametrize(("make", "segmenter_wrote", "whole_file_same"), [
    (lambda f: f.plain, lambda f: f.fragmented, True),
    # The audio template's bit rate (an estimate from one ADTS frame) is in the segmenter's moov, not in this one.
    (lambda f: f.plain_av, lambda f: f.fragmented_av, False),
    (lambda f: wide_mdat(f.plain), lambda f: f.fragmented, True),
    (lambda f: f.ffmpeg_plain, None, False),
    (lambda f: f.fragmented, lambda f: f.fragmented, True),  # already fragmented: returned as it is
], ids=["segmenter-plain", "segmenter-plain-with-audio", "64-bit-size", "ffmpeg-plain", "fragmented"])
def test_to_fragmented_keeps_every_packet_frame_and_timestamp(files, tmp_path, make, segmenter_wrote,
                                                              whole_file_same):
    source = make(files)
    result = to_fragmented(source)
    assert is_fragmented(result)
    if segmenter_wrote is not None:
        expected = segmenter_wrote(files)
        assert split(result)[1] == split(expected)[1], "the segmenter's fragments, byte for byte"
        assert (result == expected) is whole_file_same
    assert packets(result) == moved_to_zero(packets(source))
    assert decoded(result) == moved_to_zero(decoded(source))
    check = check_mp4(result)  # and ffmpeg decodes it without an error line
    assert check.frames == 30 and check.duration == pytest.approx(check_mp4(source).duration, abs=1e-3)
    path = tmp_path / "chunk.mp4"
    path.write_bytes(result)
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=duration",
                            "-of", "csv=p=0", str(path)], capture_output=True, text=True, timeout=30)
    assert not probe.stderr and float(probe.stdout) == pytest.approx(2.0, abs=1e-3), "the video spans its 2 s"


def test_box_is_where_the_data_says(files):
    moov = boxes(files.fragmented)[1]
    assert moov == Box("moov", 28, moov.size, 8)
    assert files.fragmented[moov.offset + 4:moov.offset + 8] == b"moov"
    assert moov.body == slice(36, moov.end)
