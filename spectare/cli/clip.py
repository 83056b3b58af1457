"""`spectare clip export`: one MP4 of a camera between two moments, from the recorded chunks."""

import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import click

from spectare.core.config import load_settings
from spectare.core.errors import NotFoundError
from spectare.core.timeparse import iso, parse_time
from spectare.media.clipexport import chunks_between, download_chunks, store_clip
from spectare.schemas import camera_name
from spectare.schemas.keys import clip_key
from spectare.schemas.queries import ChunkRef

from .common import with_index

PRESIGN_DAYS = 7


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
    camera_name(name)
    if output is None and not to_s3:
        raise click.UsageError("say where the clip goes: -o FILE, or --s3")
    t0, t1 = parse_time(start), parse_time(end)
    if t1 <= t0:
        raise click.UsageError(f"END ({iso(t1)}) must be after START ({iso(t0)})")
    chunks, gaps = with_index(lambda index: chunks_between(index, name, t0, t1))
    if not chunks:
        raise NotFoundError(f"camera {name} has no recorded footage between {iso(t0)} and {iso(t1)}")
    work = Path(tempfile.mkdtemp(prefix="spectare-clip-"))
    try:
        from spectare.media.clips import export_clip  # PyAV: the rest of the CLI runs without it

        with click.progressbar(length=len(chunks), label=f"downloading {len(chunks)} chunk(s)", file=sys.stderr,
                               item_show_func=_chunk_file_name) as downloading:
            files = download_chunks(chunks, work, downloaded=lambda c: downloading.update(1, c))
        target = output or work / "clip.mp4"
        with click.progressbar(length=len(files), label="joining", file=sys.stderr) as joining:
            made = export_clip(files, t0, t1, target, progress=lambda _c: joining.update(1))
        early = t0 - made.start
        click.echo(f"clip of camera {name}: {iso(made.start)} to {iso(made.end)} "
                   f"({_duration(made.end - made.start)}), {made.frames} frames from "
                   f"{made.chunks} chunk(s)" + (f"; starts {early:.2f} s before START, at a keyframe" if early > 0
                                                 else ""))
        for gap in gaps:
            click.echo(f"  no footage from {iso(gap.start)} to {iso(gap.end) if gap.end else 'now'}: {gap.reason}")
        if output is not None:
            click.echo(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB)")
        if to_s3:
            settings = load_settings()
            key = clip_key(name, t0, t1)
            url = store_clip(settings.s3, target, key, timedelta(days=PRESIGN_DAYS).total_seconds())
            click.echo(f"stored s3://{settings.s3.bucket}/{key}\n{url}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _duration(seconds: float) -> str:
    """60.3 -> '1:00.3', 3725.0 -> '1:02:05.0'."""
    minutes, rest = divmod(round(seconds, 1), 60)
    hours, minutes = divmod(int(minutes), 60)
    return (f"{hours}:{minutes:02d}:" if hours else f"{minutes}:") + f"{rest:04.1f}"


def _chunk_file_name(chunk: ChunkRef | None) -> str | None:
    return chunk.key.rsplit("/", 1)[-1] if chunk else None
