"""Segments moved to their place in a playlist (`spectare.api.retime`) on real chunks the segmenter makes from
the test footage: every packet moved by exactly the segment's position, nothing else changed (sizes, frames, and
nothing at all at position 0), a playlist of them that FFmpeg's HLS demuxer decodes as one timeline, what cannot
be moved, and the segment route's own streaming walk over a chunk fed a few bytes at a time."""

import asyncio
import io
import subprocess
from fractions import Fraction

import av
import pytest

from spectare.api import media
from spectare.api.playlists import media_playlist, segment_path
from spectare.api.retime import (
    Retimer,
    box_header,
    offsets_at,
    retime,
    shift_moof,
    track_timescales,
)
from spectare.core.config import S3Settings
from spectare.media.fmp4 import Mp4Error, boxes, children
from spectare.schemas.keys import chunk_key
from spectare.segmenter.remux import Remuxer

from .packets import load_clip, plans_of, with_tone


@pytest.fixture(scope="module")
def chunks(camera_clip, tmp_path_factory):
    """(key, start, end, bytes) of the first four 2 s chunks of the camera clip, as the segmenter stores them."""
    remuxer = Remuxer()
    return [(chunk_key("cam1", p.start, p.session, p.first_seq), p.start, p.end, remuxer.remux(p).data)
            for p in plans_of(load_clip(camera_clip))[:4]]


@pytest.fixture(scope="module")
def with_audio(camera_clip, tmp_path_factory):
    plan = plans_of(load_clip(with_tone(camera_clip, tmp_path_factory.mktemp("retime") / "av.mp4")))[1]
    return chunk_key("cam1", plan.start, plan.session, plan.first_seq), Remuxer().remux(plan).data


def packets(data: bytes) -> list[tuple[str, int | None, int | None, bytes]]:
    with av.open(io.BytesIO(data)) as container:
        return [(p.stream.type, p.pts, p.dts, bytes(p)) for p in container.demux() if p.size]


def time_bases(data: bytes) -> dict[str, Fraction]:
    with av.open(io.BytesIO(data)) as container:
        return {s.type: s.time_base for s in container.streams}


AT_MS = 86_399_999  # a segment a day into a playlist (a millisecond short)


@pytest.mark.parametrize("audio", [False, True])
def test_every_packet_moves_by_the_segments_position_and_nothing_else_changes(chunks, with_audio, audio):
    data = with_audio[1] if audio else chunks[0][3]
    assert retime(data, 0) == data
    moved = retime(data, AT_MS)
    assert len(moved) == len(data)
    assert [b.type for b in boxes(moved)] == [("free" if b.type == "mfra" else b.type) for b in boxes(data)]
    scales = track_timescales(data[boxes(data)[1].offset:boxes(data)[1].end])
    assert len(scales) == (2 if audio else 1)
    bases = time_bases(data)
    assert {1 / b for b in bases.values()} == set(scales.values())
    before, after = packets(data), packets(moved)
    assert [(kind, payload) for kind, _, _, payload in after] == [(kind, payload) for kind, _, _, payload in before]
    for (kind, pts, dts, _), (_, moved_pts, moved_dts, _) in zip(before, after, strict=True):
        ticks = AT_MS * (1 / bases[kind]) // 1000
        assert (moved_pts - pts, moved_dts - dts) == (ticks, ticks)
    assert abs(after[0][1] * bases["video"] - Fraction(AT_MS, 1000)) < Fraction(1, 1000)


def test_consecutive_chunks_decode_as_one_timeline_in_ffmpegs_hls_demuxer(chunks, tmp_path):
    """The reason for it all: FFmpeg's HLS demuxer plays the moved chunks of a playlist as one timeline."""
    refs = [type("Ref", (), {"key": k, "start": s, "end": e})() for k, s, e, _ in chunks]
    playlist = media_playlist("cam1", refs, [], chunks[0][1], chunks[-1][2], chunks[-1][2] + 3600)
    stored = {k.removeprefix("footage/cam1/"): data for k, _, _, data in chunks}
    for uri in [line for line in playlist.text.splitlines() if line.startswith("segments/")]:
        at_ms, tail = segment_path(uri.removeprefix("segments/"))
        path = tmp_path / uri
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(retime(stored.pop(tail), at_ms))
    assert not stored
    (tmp_path / "vod.m3u8").write_text(playlist.text)
    done = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(tmp_path / "vod.m3u8"), "-map", "0:v",
                           "-f", "framecrc", "-"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    frames = [line for line in done.stdout.splitlines() if line and not line.startswith("#")]
    expected = sum(len([p for p in packets(data) if p[0] == "video"]) for _, _, _, data in chunks)
    assert len(frames) == expected == round((chunks[-1][2] - chunks[0][1]) * 15)
    times = [int(line.split(",")[2]) for line in frames]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert times[0] == 0


def box(kind: bytes, body: bytes) -> bytes:
    return (8 + len(body)).to_bytes(4, "big") + kind + body


def moof(track: int, tfdt_version: int, decode_time: int) -> bytes:
    tfhd = box(b"tfhd", bytes(4) + track.to_bytes(4, "big"))
    tfdt = box(b"tfdt", bytes([tfdt_version, 0, 0, 0]) + decode_time.to_bytes(8 if tfdt_version else 4, "big"))
    return box(b"moof", box(b"mfhd", bytes(8)) + box(b"traf", tfhd + tfdt))


@pytest.mark.parametrize("version, start, offset, moved", [
    (1, 0, 86_400_000 * 90, 86_400_000 * 90),
    (1, 15360, 7, 15367),
    (0, 100, 5, 105),  # a 32-bit decode time that still holds the sum
])
def test_shift_moof_moves_the_decode_time_of_the_track(version, start, offset, moved):
    shifted = shift_moof(moof(2, version, start), {2: offset})
    traf = children(shifted, boxes(shifted)[0])[1]
    tfdt = children(shifted, traf)[1]
    width = 8 if version else 4
    assert int.from_bytes(shifted[tfdt.body.start + 4:tfdt.body.start + 4 + width], "big") == moved


@pytest.mark.parametrize("make, message", [
    (lambda: shift_moof(moof(1, 0, 0), {1: 1 << 32}), "32-bit decode time cannot hold the moved time"),
    (lambda: shift_moof(moof(3, 1, 0), {1: 5}), "track 3, which the moov does not have"),
    (lambda: Retimer(5).feed("moof", moof(1, 1, 0)), "a moof before the moov"),
    (lambda: track_timescales(box(b"moov", box(b"mvhd", bytes(100)))), "the moov has no track"),
    (lambda: track_timescales(box(b"moof", b"")), "expected one 'moov' box"),
    (lambda: box_header(b"\x00\x00\x00\x04abcd"), "claims 4 bytes"),
])
def test_what_cannot_be_retimed_is_one_mp4_error(make, message):
    with pytest.raises(Mp4Error, match=message):
        make()


@pytest.mark.parametrize("data, header", [
    (b"\x00\x00\x00\x10moov", ("moov", 16, 8)),
    (b"\x00\x00\x00\x01mdat" + (1 << 33).to_bytes(8, "big"), ("mdat", 1 << 33, 16)),
    (b"\x00\x00\x00\x00mdat", ("mdat", None, 8)),
    (b"\x00\x00\x00\x01mdat\x00", None),  # its 64-bit size not read yet
    (b"\x00\x00", None),
])
def test_box_header(data, header):
    assert box_header(data) == header


def test_offsets_per_track_are_whole_ticks():
    assert offsets_at({1: 90_000, 2: 44_100, 3: 15_360}, 2_067) == {1: 186_030, 2: 91_154, 3: 31_749}


class TrickleResponse:
    """An S3 object answer that hands out at most `step` bytes a read (the segment route must not mind)."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.closed = data, step, False

    def read(self, amount: int) -> bytes:
        piece, self.data = self.data[:min(amount, self.step)], self.data[min(amount, self.step):]
        return piece

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


@pytest.mark.parametrize("step", [7, 1000, 1 << 20])
def test_the_segment_routes_streaming_walk_equals_the_whole_file_retimed(chunks, step):
    key, _, _, data = chunks[1]
    response = TrickleResponse(data, step)

    async def walk() -> tuple[bytes, int]:
        source = media._S3Stream(response, S3Settings(), key)
        pieces = [piece async for piece in media._retimed(source, Retimer(AT_MS))]
        return b"".join(pieces), max(len(p) for p in pieces)

    streamed, largest = asyncio.run(walk())
    assert streamed == retime(data, AT_MS) and response.closed
    assert largest <= 2 * media.READ_BYTES  # never the whole object in memory
    with pytest.raises(Mp4Error, match="is cut off"):
        asyncio.run(_collect(media._retimed(media._S3Stream(TrickleResponse(data[:-10], step), S3Settings(), key),
                                            Retimer(AT_MS))))


async def _collect(pieces):
    return [piece async for piece in pieces]
