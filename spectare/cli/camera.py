"""`spectare camera ...`: the camera registry."""

from datetime import UTC, datetime

import click

from spectare.core.redact import redact
from spectare.core.registry import CameraRegistry
from spectare.schemas import CameraConfig, camera_name

from .common import print_json, print_table, with_bus


def public_view(camera: CameraConfig) -> dict:
    """A camera as shown to people: everything but the URL's credentials."""
    view = camera.model_dump(mode="json")
    view["url"] = redact(camera.url)
    for stamp in ("created_at", "updated_at"):
        view[stamp] = datetime.fromtimestamp(view[stamp], UTC).isoformat(timespec="seconds")
    return view


def _validated_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return camera_name(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
def camera() -> None:
    """Register, list, show and remove cameras."""


@camera.command("add")
@click.argument("name", callback=_validated_name)
@click.argument("url")
@click.option("--friendly-name", default="", help="Human name shown in listings, e.g. 'Front porch'.")
@click.option("--detect/--no-detect", default=True, show_default=True, help="Run object detection on it.")
@click.option("--segment-seconds", type=click.IntRange(1, 3600), default=10, show_default=True,
              help="Length of recorded MP4 chunks (cut at the next keyframe).")
def add(name: str, url: str, friendly_name: str, detect: bool, segment_seconds: int) -> None:
    """Register camera NAME streaming at URL (rtsp://user:password@host:554/path).

    NAME is 1-63 characters of a-z, 0-9, '_' or '-'. The password is stored for the recorder and
    never shown again: listings print rtsp://user:***@host/...
    """
    config = CameraConfig.create(
        name=name, url=url, friendly_name=friendly_name, detect=detect, segment_seconds=segment_seconds
    )

    async def work(js, settings):
        return await (await CameraRegistry.open(js, settings)).add(config)

    added = with_bus(work)
    click.echo(f"added camera {added.name} ({redact(added.url)})")


@camera.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (URLs redacted).")
def list_(as_json: bool) -> None:
    """List registered cameras."""

    async def work(js, settings):
        return await (await CameraRegistry.open(js, settings)).list()

    cameras = with_bus(work)
    if as_json:
        print_json([public_view(c) for c in cameras])
        return
    if not cameras:
        click.echo("no cameras registered; add one with `spectare camera add NAME URL`")
        return
    print_table(
        ["NAME", "FRIENDLY NAME", "DETECT", "SEGMENT", "URL"],
        [[c.name, c.friendly_name, "on" if c.detect else "off", f"{c.segment_seconds}s", redact(c.url)]
         for c in cameras],
    )


@camera.command("show")
@click.argument("name", callback=_validated_name)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (URL redacted).")
def show(name: str, as_json: bool) -> None:
    """Show one camera's settings."""

    async def work(js, settings):
        return await (await CameraRegistry.open(js, settings)).get(name)

    view = public_view(with_bus(work))
    if as_json:
        print_json(view)
        return
    width = max(len(k) for k in view)
    for key, value in view.items():
        click.echo(f"{key.ljust(width)}  {value}")


@camera.command("rm")
@click.argument("name", callback=_validated_name)
def rm(name: str) -> None:
    """Remove a camera from the registry (its recorded footage stays)."""

    async def work(js, settings):
        await (await CameraRegistry.open(js, settings)).remove(name)

    with_bus(work)
    click.echo(f"removed camera {name}")
