"""`spectare camera ...`: the camera registry."""

import time

import click

from spectare.core.camerastatus import CameraStatusBoard, current_status
from spectare.core.leases import LeaseTable
from spectare.core.redact import redact
from spectare.core.registry import CameraRegistry, public_view
from spectare.schemas import CameraConfig, CameraStatus, camera_name, label_token
from spectare.schemas.zones import parse_polygon, polygon_problem

from .common import print_json, print_table, with_bus


def _validated_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return camera_name(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _labels(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, ...] | None | str:
    """'person,car' -> ('person', 'car'); 'all' -> () (every label); 'default' -> None (detector's list)."""
    if value is None:
        return UNSET
    if value.strip().lower() == "default":
        return None
    if value.strip().lower() == "all":
        return ()
    try:
        return tuple(label_token(label) for label in value.split(",") if label.strip())
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


UNSET = "unset"  # an option the user did not give (None means "back to the default" for some)


def camera_options(command):  # noqa: ANN001, ANN201 - a click decorator
    """Options shared by `camera add` and `camera set`: what the detector does with a camera, and how long its
    footage is kept."""
    options = [
        click.option("--detect/--no-detect", default=None, help="Run object detection on it (default: on)."),
        click.option("--labels", callback=_labels,
                     help="Labels to report, comma-separated (person,car,truck); 'all' for every label the model "
                          "knows, 'default' for the detector's list (person and vehicles)."),
        click.option("--min-score", type=click.FloatRange(0.01, 1.0),
                     help="Lowest score reported, 0.01-1 (default: the detector's, 0.5)."),
        click.option("--motion-gate/--no-motion-gate", default=None,
                     help="Detect only on keyframes that differ from the previous one (default: on)."),
        click.option("--motion-threshold", type=click.FloatRange(0.0, 1.0),
                     help="Share of the picture that must change to pass the gate (default: the detector's, 0.002)."),
        click.option("--audio", type=click.Choice(["copy", "off"]),
                     help="copy: record the camera's audio with the video (AAC as it comes, G.711 transcoded to "
                          "AAC); off: video only (default: copy). A change reconnects the camera."),
    ]
    options += [
        click.option("--keep-days", type=click.FloatRange(0.01, 36_500),
                     help="Days plain footage is kept (default: the indexer's, 14)."),
        click.option("--keep-event-days", type=click.FloatRange(0.01, 36_500),
                     help="Days footage around detections, the detections and snapshots are kept (default 30)."),
        click.option("--max-gb", type=click.FloatRange(0.001), help="Cap on this camera's stored footage in GB; "
                     "the oldest plain footage goes first (default: none)."),
    ]
    options += [
        click.option("--zone", "zones", multiple=True, callback=_polygons, metavar="NAME=X,Y,X,Y,X,Y...",
                     help="A named zone: corners in order, x and y 0..1 of the picture (0,0 top left); events say "
                          "which zones an object stood in (by its box's bottom centre). Repeat for more; replaces "
                          "the camera's zones."),
        click.option("--mask", "masks", multiple=True, callback=_polygons, metavar="NAME=X,Y,...",
                     help="A named mask: objects standing in it are not reported. Repeat for more; replaces the "
                          "camera's masks (with --motion-mask)."),
        click.option("--motion-mask", "motion_masks", multiple=True, callback=_polygons, metavar="NAME=X,Y,...",
                     help="A mask that also hides its motion from the motion gate (swaying trees, a busy road)."),
        click.option("--require-zone", "required_zones", multiple=True, metavar="ZONE",
                     help="Raise events only for objects that enter this zone (repeat for any of several)."),
        click.option("--no-zones", is_flag=True, default=None, help="Remove every zone and required zone."),
        click.option("--no-masks", is_flag=True, default=None, help="Remove every mask."),
        click.option("--min-hits", type=click.IntRange(1, 30),
                     help="Keyframes an object must be seen on before its `new` event (default: the detector's, 2)."),
        click.option("--end-after", "end_after_s", type=click.FloatRange(1, 3600),
                     help="Seconds an object may go unseen before its `end` event (default: the detector's, 10)."),
        click.option("--stationary-after", "stationary_after_s", type=click.FloatRange(1, 86_400),
                     help="Seconds without moving before an object is stationary and goes quiet (default 30)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _polygons(_ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[dict, ...] | None:
    """'drive=0.1,0.5,...' options -> polygons (None when the option was not given)."""
    polygons = []
    for text in values:
        try:
            name, points = parse_polygon(text)
            problem = polygon_problem(points)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
        if problem:
            raise click.BadParameter(f"{name}: {problem}")
        polygon: dict = {"name": name, "points": points}
        if param.name == "motion_masks":
            polygon["motion"] = True
        polygons.append(polygon)
    return tuple(polygons) or None


def _zone_fields(options: dict[str, object]) -> dict[str, object]:
    """The zone and mask options as CameraConfig fields (taken out of `options`): given ones replace, --no-*
    clear."""
    fields: dict[str, object] = {}
    zones, required = options.pop("zones"), options.pop("required_zones")
    masks, motion_masks = options.pop("masks"), options.pop("motion_masks")
    if options.pop("no_zones"):
        fields.update(zones=(), required_zones=())
    if options.pop("no_masks"):
        fields["masks"] = ()
    if zones is not None:
        fields["zones"] = zones
    if required:
        fields["required_zones"] = required
    if masks is not None or motion_masks is not None:
        fields["masks"] = (*(masks or ()), *(motion_masks or ()))  # type: ignore[misc]
    return fields


def _given(**values: object) -> dict[str, object]:
    """The options the user gave (click passes None for an absent flag or number, UNSET for --labels)."""
    return {k: v for k, v in values.items() if v is not None and v != UNSET or (k == "labels" and v is None)}


@click.group()
def camera() -> None:
    """Register, list, show, change and remove cameras."""


@camera.command("add")
@click.argument("name", callback=_validated_name)
@click.argument("url")
@click.option("--friendly-name", default="", help="Human name shown in listings, e.g. 'Front porch'.")
@click.option("--segment-seconds", type=click.IntRange(1, 3600), default=10, show_default=True,
              help="Length of recorded MP4 chunks (cut at the next keyframe).")
@camera_options
def add(name: str, url: str, friendly_name: str, segment_seconds: int, **options: object) -> None:
    """Register camera NAME streaming at URL (rtsp://user:password@host:554/path).

    NAME is 1-63 characters of a-z, 0-9, '_' or '-'. The password is stored for the recorder and
    never shown again: listings print rtsp://user:***@host/...
    """
    zones = _zone_fields(options)
    config = CameraConfig.create(
        name=name, url=url, friendly_name=friendly_name, segment_seconds=segment_seconds, **_given(**options), **zones
    )

    async def work(js, settings):
        return await (await CameraRegistry.open(js, settings)).add(config)

    added = with_bus(work)
    click.echo(f"added camera {added.name} ({redact(added.url)})")


@camera.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (URLs redacted).")
def list_(as_json: bool) -> None:
    """List registered cameras, each with what its ingest worker says: STATE is streaming, connecting, retrying
    (ERROR says why), stopped, or orphaned (no ingest worker holds it)."""

    async def work(js, settings):
        cameras = await (await CameraRegistry.open(js, settings)).list()
        said = await (await CameraStatusBoard.open(js, settings)).all()
        owners = await LeaseTable(await js.key_value(settings.names.leases_bucket), "ingest", "cli").owners()
        return cameras, said, owners

    cameras, said, owners = with_bus(work)
    rows = [(c, owners.get(c.name), current_status(said.get(c.name), owners.get(c.name))) for c in cameras]
    if as_json:
        print_json([{**public_view(c), "ingest_worker": owner, "ingest": _status_view(status)}
                    for c, owner, status in rows])
        return
    if not cameras:
        click.echo("no cameras registered; add one with `spectare camera add NAME URL`")
        return
    print_table(
        ["NAME", "FRIENDLY NAME", "DETECT", "SEGMENT", "STATE", "URL", "ERROR"],
        [[c.name, c.friendly_name, "on" if c.detect else "off", f"{c.segment_seconds}s", _state(owner, status),
          redact(c.url), _error(status)] for c, owner, status in rows],
    )


def _state(owner: str | None, status: CameraStatus | None) -> str:
    if owner is None:
        return "orphaned"
    return status.state if status is not None else "starting"  # claimed, nothing said yet


def _error(status: CameraStatus | None) -> str:
    if status is None or status.error is None:
        return ""
    attempts = f", {status.attempts} attempts" if status.attempts > 1 else ""
    return f"{status.error_kind} since {time.strftime('%H:%M:%S', time.localtime(status.since))}{attempts}: " \
           f"{redact(status.error)}"


def _status_view(status: CameraStatus | None) -> dict | None:
    return None if status is None else status.model_dump(exclude={"camera"})


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


@camera.command("set")
@click.argument("name", callback=_validated_name)
@click.option("--url", help="New stream URL (recording restarts on it).")
@click.option("--friendly-name", help="Human name shown in listings.")
@click.option("--segment-seconds", type=click.IntRange(1, 3600), help="Length of recorded MP4 chunks.")
@camera_options
def set_(name: str, **changes: object) -> None:
    """Change settings of camera NAME; options not given keep their value. Detection settings apply
    live, without interrupting the recording.

    \b
    spectare camera set porch --labels person,car --min-score 0.6
    spectare camera set garage --no-detect
    spectare camera set drive --zone drive=0.1,0.5,0.4,0.5,0.4,0.9 --require-zone drive
    """
    zones = _zone_fields(changes)
    update = {**_given(**changes), **zones}
    if not update:
        raise click.UsageError("nothing to change: give at least one option (see --help)")

    async def work(js, settings):
        registry = await CameraRegistry.open(js, settings)
        current = await registry.get(name)
        return await registry.put(CameraConfig.create(**{**current.model_dump(), **update}))

    changed = with_bus(work)
    click.echo(f"updated camera {changed.name}: " + ", ".join(f"{k}={_shown(k, v)}" for k, v in update.items()))


def _shown(field: str, value: object) -> str:
    if field == "url":
        return redact(str(value))
    if field == "labels":
        return "default" if value is None else (",".join(value) or "all")  # type: ignore[arg-type]
    if field in ("zones", "masks"):
        return ",".join(p["name"] for p in value) or "none"  # type: ignore[attr-defined]
    if field == "required_zones":
        return ",".join(value) or "none"  # type: ignore[arg-type]
    return str(value)


@camera.command("rm")
@click.argument("name", callback=_validated_name)
def rm(name: str) -> None:
    """Remove a camera from the registry (its recorded footage stays)."""

    async def work(js, settings):
        await (await CameraRegistry.open(js, settings)).remove(name)

    with_bus(work)
    click.echo(f"removed camera {name}")
