"""`spectare footage ...`: recorded chunks and gaps."""

from pathlib import Path

import click

from spectare.core.config import load_settings
from spectare.core.footage import read_footage
from spectare.core.store import s3_client, s3_errors
from spectare.core.timeparse import iso, parse_time, since
from spectare.schemas import Segment, camera_name

from .common import print_json, print_table, with_bus, with_index


@click.group()
def footage() -> None:
    """List and download recorded footage."""


@footage.command("ls")
@click.option("--camera", help="Only this camera.")
@click.option("--since", "since_text", default="24h", show_default=True,
              help="How far back: 90s, 15m, 2h, 3d, ...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ls(camera: str | None, since_text: str, as_json: bool) -> None:
    """List recorded chunks and gaps in time order."""
    if camera:
        camera_name(camera)
    start = since(since_text)

    async def work(js, settings):
        return await read_footage(js, settings, camera, start)

    items = with_bus(work)
    if as_json:
        print_json([_view(i) for i in items])
        return
    if not items:
        click.echo(f"no footage since {iso(start)}")
        return
    rows = []
    for item in items:
        view = _view(item)
        if view["type"] == "chunk":
            rows.append([item.camera, view["start"], view["end"], f"{view['duration']:.2f}s", str(item.frames),
                         f"{item.bytes / 1e6:.2f} MB", item.key])
        else:
            end = view["end"] or "(ongoing)"
            rows.append([item.camera, view["start"], end, "", "", "GAP", item.reason])
    print_table(["CAMERA", "START", "END", "DURATION", "FRAMES", "SIZE", "KEY"], rows)


def _view(item) -> dict:
    if isinstance(item, Segment):
        return {"type": "chunk", "camera": item.camera, "start": iso(item.start), "end": iso(item.end),
                "duration": round(item.duration, 3), "frames": item.frames, "bytes": item.bytes,
                "key": item.key, "bucket": item.bucket, "session": item.session,
                "first_seq": item.first_seq, "last_seq": item.last_seq, "codec": item.codec,
                "width": item.width, "height": item.height}
    return {"type": "gap", "camera": item.camera, "start": iso(item.start),
            "end": iso(item.end) if item.end is not None else None, "reason": item.reason}


@footage.command("get")
@click.argument("key")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write, e.g. out.mp4.")
def get(key: str, output: Path) -> None:
    """Download the chunk stored under KEY (as listed by `footage ls`)."""
    settings = load_settings()
    client = s3_client(settings.s3, retries=0)
    with s3_errors(settings.s3, f"downloading {key!r}"):
        client.fget_object(settings.s3.bucket, key, str(output))
    click.echo(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB)")


@footage.command("at")
@click.argument("camera")
@click.argument("moment", metavar="TIME")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with a presigned download URL.")
def at(camera: str, moment: str, as_json: bool) -> None:
    """What CAMERA recorded at TIME: the chunk holding it (and how far into it), the gap it falls in, or
    nothing. TIME: now, 10m (ago), today 08:30, yesterday 14:00, 2026-11-27T14:00 (local), ...Z (UTC).
    Needs the indexer (`spectare up` runs it)."""
    camera = camera_name(camera)
    when = parse_time(moment)
    found = with_index(lambda index: index.footage_at(camera, when))
    if as_json:
        view = found.model_dump(mode="json")
        view["time_iso"] = iso(found.time)
        print_json(view)
        return
    if found.chunk is not None:
        chunk = found.chunk
        click.echo(f"{camera} at {iso(found.time)}: chunk {chunk.key} ({iso(chunk.start)} .. {iso(chunk.end)}), "
                   f"{found.offset:.2f} s in")
        click.echo(f"  spectare footage get {chunk.key} -o clip.mp4")
        click.echo(f"  {chunk.url}")
    elif found.gap is not None:
        gap = found.gap
        end = iso(gap.end) if gap.end is not None else "(still away)"
        click.echo(f"{camera} at {iso(found.time)}: no footage, gap {iso(gap.start)} .. {end}: {gap.reason}")
    else:
        before = f"footage before ends at {iso(found.previous_end)}" if found.previous_end else "no footage before"
        after = f"resumes at {iso(found.next_start)}" if found.next_start else "none after"
        click.echo(f"{camera} at {iso(found.time)}: nothing recorded ({before}; {after})")
