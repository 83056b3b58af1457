"""Clip export from real MP4 chunks: cut to the range (start at the keyframe before it, end to the frame),
back-to-back chunks joined without a seam, a gap kept as a jump in time, nothing in range refused; old plain MP4
chunks and the segmenter's fragmented ones joined in one clip."""

import asyncio
import json
import subprocess
import time
import urllib.request
from pathlib import Path

import av
import pytest

from spectare.core.errors import NotFoundError
from spectare.core.store import ensure_bucket, s3_client
from spectare.core.timeparse import iso
from spectare.local.testcam import make_test_clip
from spectare.media.clips import ChunkFile, covering, export_clip
from spectare.media.fmp4 import is_fragmented
from spectare.schemas import Segment
from spectare.schemas.keys import chunk_key
from spectare.segmenter.remux import Remuxer

from .helpers import ServiceProcess, eventually, run_cli
from .media import source_video
from .packets import PLAIN_MP4_OPTIONS, check_mp4, load_clip, plans_of

FPS = 15
T0 = 1795845752.0


@pytest.fixture(scope="module")
def chunks(tmp_path_factory) -> list[ChunkFile]:
    """Four 2-second MP4 chunks cut (no transcode) from 8 s of real footage, each starting with a keyframe,
    the way the segmenter stores them; wall times from T0."""
    folder = tmp_path_factory.mktemp("chunks")
    clip = make_test_clip(source_video(), folder / "source.mp4", width=320, height=180, fps=FPS, gop_seconds=1,
                          seconds=8)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(clip), "-c", "copy", "-f", "segment",
                    "-segment_time", "2", "-reset_timestamps", "1", str(folder / "chunk%d.mp4")], check=True)
    return [ChunkFile(folder / f"chunk{i}.mp4", T0 + 2 * i, T0 + 2 * i + 2) for i in range(4)]


def frames_of(path: Path) -> list[tuple[float, bool]]:
    """(presentation time in seconds, keyframe) of every decoded frame; decoding must not fail."""
    with av.open(str(path)) as container:
        return [(float(f.pts * f.time_base), f.key_frame) for f in container.decode(video=0)]


@pytest.mark.parametrize(
    ("start", "end", "first_frame", "frames"),
    [
        (0.0, 8.0, 0.0, 8 * FPS),  # everything
        (2.5, 5.0, 2.0, 3 * FPS),  # starts at the keyframe at 2.0 s, ends before 5.0 s
        (3.0, 3.5, 3.0, 7 + 1),  # a keyframe exactly at the start; 0.5 s -> frames at 3.000 ... 3.467
        (-5.0, 1.0, 0.0, FPS),  # a range starting before the footage
    ],
)
def test_clips_are_cut_to_the_range_and_play(chunks, tmp_path, start, end, first_frame, frames):
    clip = export_clip(chunks, T0 + start, T0 + end, tmp_path / "clip.mp4")
    decoded = frames_of(clip.path)
    assert len(decoded) == clip.frames == frames
    assert decoded[0] == (0.0, True), "a clip starts with a keyframe at time 0"
    assert clip.start == pytest.approx(T0 + first_frame, abs=1e-3)
    assert clip.end <= T0 + max(end, 0) + 1 / FPS + 1e-3
    steps = [b - a for (a, _), (b, _) in zip(decoded, decoded[1:], strict=False)]
    assert all(abs(step - 1 / FPS) < 2e-3 for step in steps), "no seam between chunks: frames stay 1/15 s apart"


def test_a_gap_between_chunks_stays_a_jump_in_time(chunks, tmp_path):
    with_gap = [chunks[0], ChunkFile(chunks[2].path, T0 + 10, T0 + 12)]  # camera away from 2 s to 10 s
    clip = export_clip(with_gap, T0, T0 + 12, tmp_path / "gap.mp4")
    times = [t for t, _ in frames_of(clip.path)]
    assert len(times) == 4 * FPS
    assert times[FPS * 2] == pytest.approx(10.0, abs=1e-3), "the second chunk plays at its wall time"
    assert clip.chunks == 2


def test_a_clip_joins_an_old_plain_chunk_and_a_fragmented_one(camera_clip, tmp_path):
    """Footage recorded across the upgrade: a plain MP4 chunk (previous remux options) then the segmenter's fMP4."""
    plans = plans_of(load_clip(camera_clip))[:2]
    old, new = tmp_path / "old.mp4", tmp_path / "new.mp4"
    old.write_bytes(Remuxer(PLAIN_MP4_OPTIONS).remux(plans[0]).data)
    new.write_bytes(Remuxer().remux(plans[1]).data)
    assert not is_fragmented(old.read_bytes()) and is_fragmented(new.read_bytes())
    chunks = [ChunkFile(old, plans[0].start, plans[0].end), ChunkFile(new, plans[1].start, plans[1].end)]
    clip = export_clip(chunks, plans[0].start + 0.5, plans[1].start + 1.5, tmp_path / "clip.mp4")
    assert clip.chunks == 2 and clip.start == pytest.approx(plans[0].start, abs=1e-3)
    check = check_mp4(clip.path.read_bytes())  # decodes with no error line
    decoded = frames_of(clip.path)
    assert check.frames == len(decoded) == clip.frames == 53  # from 0 s to 3.467 s, the last frame before 3.5 s
    steps = [b - a for (a, _), (b, _) in zip(decoded, decoded[1:], strict=False)]
    assert all(abs(step - 1 / FPS) < 2e-3 for step in steps), "no seam where the fragmented chunk begins"


def test_progress_is_reported_per_chunk_and_nothing_in_range_is_an_error(chunks, tmp_path):
    seen = []
    export_clip(chunks, T0 + 1, T0 + 5, tmp_path / "p.mp4", progress=seen.append)
    assert seen == covering(chunks, T0 + 1, T0 + 5) == chunks[:3]
    with pytest.raises(NotFoundError, match="no recorded footage"):
        export_clip(chunks, T0 + 100, T0 + 110, tmp_path / "none.mp4")
    assert not (tmp_path / "none.mp4").exists()


async def test_cli_clip_export_to_a_file_and_to_s3(js, settings, chunks, tmp_path):
    """`spectare clip export` as a user runs it, against a real indexer whose chunks are real MP4s in S3."""
    ensure_bucket(settings.s3)
    s3 = s3_client(settings.s3)
    start = float(int(time.time()) - 600)  # whole seconds: typed times (ms) hit keyframes exactly
    for i, chunk in enumerate(chunks):
        key = chunk_key("yard", start + 2 * i, "s1", i * 2 * FPS)
        s3.fput_object(settings.s3.bucket, key, str(chunk.path), content_type="video/mp4")
        segment = Segment(camera="yard", bucket=settings.s3.bucket, key=key, session="s1", first_seq=i * 2 * FPS,
                          last_seq=(i + 1) * 2 * FPS - 1, start=start + 2 * i, end=start + 2 * i + 2,
                          frames=2 * FPS, bytes=chunk.path.stat().st_size, codec="h264", width=320, height=180)
        await js.publish(settings.names.footage("yard"), segment.encode())
    indexer = ServiceProcess("indexer", settings, tmp_path / "indexer.log",
                             SPECTARE_INDEXER__DATABASE=str(tmp_path / "index.duckdb")).start()
    try:
        async def indexed() -> bool:
            result = await asyncio.to_thread(run_cli, settings, "sql", "SELECT count(*) FROM chunks", "--json")
            return result.returncode == 0 and json.loads(result.stdout)["rows"] == [[4]]

        await eventually(indexed, 60, what="4 chunks indexed")
        out = tmp_path / "yard.mp4"
        made = await asyncio.to_thread(run_cli, settings, "clip", "export", "yard", iso(start + 1.5),
                                       iso(start + 5.0), "-o", str(out))
        assert made.returncode == 0, made.stderr
        assert "starts 0.50 s before START, at a keyframe" in made.stdout, made.stdout  # 1 s GOP: keyframe at 1.0
        decoded = frames_of(out)
        assert len(decoded) == 4 * FPS and decoded[0] == (0.0, True)  # from the keyframe at 1.0 s to 5.0 s

        stored = await asyncio.to_thread(run_cli, settings, "clip", "export", "yard", iso(start + 4),
                                         iso(start + 6), "--s3")
        assert stored.returncode == 0, stored.stderr
        url = stored.stdout.strip().splitlines()[-1]
        downloaded = tmp_path / "from-url.mp4"
        downloaded.write_bytes(urllib.request.urlopen(url, timeout=30).read())
        assert len(frames_of(downloaded)) == 2 * FPS

        nothing = await asyncio.to_thread(run_cli, settings, "clip", "export", "yard", iso(start + 100),
                                          iso(start + 110), "-o", str(tmp_path / "none.mp4"))
        assert nothing.returncode == 1
        assert nothing.stderr.strip().startswith("spectare: error: camera yard has no recorded footage between")
    finally:
        indexer.stop()
