"""`spectare clip export`: one MP4 of a camera between two moments, from the recorded chunks."""

import shutil
import sys
import tempfile
import urllib.request
from datetime import timedelta
from pathlib import Path

import click

from spectare.core.config import load_settings
from spectare.core.errors import NotFoundError, UnreachableError
from spectare.core.store import s3_client, s3_errors
from spectare.core.timeparse import iso, parse_time
from spectare.schemas import camera_name
from spectare.schemas.keys import clip_key

from .common import with_index

PRESIGN_DAYS = 7
MAX_CHUNK_PAGES = 1000


@click.group()
def clip() -> None:
    """Export clips of recorded footage."""


@clip.command("export")
@click.argument("name")
@click.argument("start")
@click.argument("end")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="MP4 file to write.")
@click.option("--s3", "to_s3", is_flag=True,
              help=f"Store the clip in the bucket (clips/NAME/...) and print a download URL valid {PRESIGN_DAYS} days.")
def export(name: str, start: str, end: str, output: Path | None, to_s3: bool) -> None:
    """Write camera NAME's footage from START to END as one MP4 (no re-encoding).

    \b
    Times: 2026-11-27T14:00 (local), ...Z (UTC), today 08:30, yesterday 14:00, 10m (ago), now.
    spectare clip export porch "today 08:30" "today 08:31" -o porch.mp4
    spectare clip export porch 15m 14m --s3

    The clip starts at the keyframe at or before START (at most one GOP early, usually under a second)
    and ends with the last frame before END; a stretch the camera was away stays a jump in time.
    """
    from spectare.indexer.clips import ChunkFile, export_clip  # needs PyAV, as the indexer does

    camera_name(name)
    if output is None and not to_s3:
        raise click.UsageError("say where the clip goes: -o FILE, or --s3")
    t0, t1 = parse_time(start), parse_time(end)
    if t1 <= t0:
        raise click.UsageError(f"END ({iso(t1)}) must be after START ({iso(t0)})")
    chunks, gaps = with_index(lambda index: _all_chunks(index, name, t0, t1))
    if not chunks:
        raise NotFoundError(f"camera {name} has no recorded footage between {iso(t0)} and {iso(t1)}")
    work = Path(tempfile.mkdtemp(prefix="spectare-clip-"))
    try:
        files = []
        with click.progressbar(chunks, label=f"downloading {len(chunks)} chunk(s)", file=sys.stderr,
                               item_show_func=lambda c: c.key.rsplit("/", 1)[-1] if c else None) as bar:
            for ref in bar:
                path = work / f"{len(files):05d}.mp4"
                _download(ref.url, path)
                files.append(ChunkFile(path, ref.start, ref.end))
        target = output or work / "clip.mp4"
        with click.progressbar(length=len(files), label="joining", file=sys.stderr) as bar:
            made = export_clip(files, t0, t1, target, progress=lambda _c: bar.update(1))
        early = t0 - made.start
        click.echo(f"clip of camera {name}: {iso(made.start)} to {iso(made.end)} "
                   f"({timedelta(seconds=round(made.end - made.start, 1))}), {made.frames} frames from "
                   f"{made.chunks} chunk(s)" + (f"; starts {early:.2f} s before START, at a keyframe" if early > 0
                                                 else ""))
        for gap in gaps:
            click.echo(f"  no footage from {iso(gap.start)} to {iso(gap.end) if gap.end else 'now'}: {gap.reason}")
        if output is not None:
            click.echo(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB)")
        if to_s3:
            click.echo(_store(target, clip_key(name, t0, t1)))
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _all_chunks(index, camera: str, start: float, end: float):  # noqa: ANN001, ANN202 - IndexClient
    """Every chunk and gap in the range, asking page after page while the indexer says there are more."""
    chunks, gaps, at = [], [], start
    for _ in range(MAX_CHUNK_PAGES):
        page = await index.chunks(camera, at, end)
        chunks += page.chunks
        gaps += [g for g in page.gaps if g not in gaps]
        if not page.truncated or not page.chunks:
            break
        at = page.chunks[-1].end
    return chunks, gaps


def _download(url: str, path: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as exc:  # urllib's errors are OSErrors; the URL carries a signature, not a password
        raise UnreachableError(f"cannot download a chunk from S3: {exc}") from None


def _store(clip: Path, key: str) -> str:
    settings = load_settings()
    client = s3_client(settings.s3)
    with s3_errors(settings.s3, f"storing the clip as {key}"):
        client.fput_object(settings.s3.bucket, key, str(clip), content_type="video/mp4")
        url = client.presigned_get_object(settings.s3.bucket, key, expires=timedelta(days=PRESIGN_DAYS))
    return f"stored s3://{settings.s3.bucket}/{key}\n{url}"
