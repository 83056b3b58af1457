"""`spectare events ...`: tracked objects as they come and go (the detector's tracker)."""

import asyncio
import time
from datetime import UTC, datetime

import click
from nats.js.api import ConsumerConfig, DeliverPolicy

from spectare.core.bus import connected
from spectare.core.config import load_settings
from spectare.core.errors import SchemaError
from spectare.core.eventjson import event_json, event_matches
from spectare.core.timeparse import iso, parse_duration, since
from spectare.schemas import ObjectEvent, camera_name, label_token


@click.group()
def events() -> None:
    """Watch tracked objects: one `new` when an object appears, `update`s when it changes, one `end`."""


@events.command("tail")
@click.option("--camera", help="Only this camera.")
@click.option("--label", help="Only this label, e.g. person, car, truck.")
@click.option("--zone", help="Only objects in or having entered this zone.")
@click.option("--since", "since_text", help="Start this far back (90s, 15m, 2h) instead of with new events.")
@click.option("-n", "--count", type=click.IntRange(1), help="Stop after this many events.")
@click.option("--for", "for_text", help="Stop after this long (30s, 5m).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (what MQTT subscribers get).")
def tail(camera: str | None, label: str | None, zone: str | None, since_text: str | None, count: int | None,
         for_text: str | None, as_json: bool) -> None:
    """Print tracked-object events live, as an alert consumer receives them, until Ctrl-C.

    Each line: time, type (new, update, end), camera, label, object id, top score, zones entered, what
    changed, and the S3 key of the best snapshot (download it with `spectare footage get KEY -o snap.jpg`).
    """
    if camera:
        camera_name(camera)
    label = label_token(label) if label else None
    zone = label_token(zone) if zone else None
    start = since(since_text) if since_text else None
    deadline = time.monotonic() + parse_duration(for_text) if for_text else None
    asyncio.run(_tail(camera, label, zone, start, count, deadline, as_json))


async def _tail(camera: str | None, label: str | None, zone: str | None, start: float | None, count: int | None,
                deadline: float | None, as_json: bool) -> None:
    settings = load_settings()
    names = settings.names
    subject = names.events(camera or "*", label or "*")
    printed = 0
    async with connected(settings, "cli-events") as nc:
        js = nc.jetstream()
        options: dict = {"deliver_policy": DeliverPolicy.NEW}
        if start is not None:
            options = {"deliver_policy": DeliverPolicy.BY_START_TIME,
                       "opt_start_time": datetime.fromtimestamp(start, UTC).isoformat()}
        sub = await js.subscribe(subject, stream=names.events_stream, ordered_consumer=True,
                                 config=ConsumerConfig(**options))
        if not as_json:
            click.echo(f"waiting for events on {subject}{f' in zone {zone}' if zone else ''} (Ctrl-C to stop)",
                       err=True)
        try:
            while count is None or printed < count:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    msg = await sub.next_msg(timeout=min(remaining or 1.0, 1.0))
                except TimeoutError:
                    continue
                try:
                    event = ObjectEvent.decode(msg.data)
                except SchemaError as exc:
                    click.echo(f"skipped an unreadable message on {msg.subject}: {exc}", err=True)
                    continue
                if not event_matches(event, zone):
                    continue
                click.echo(event_json(event, settings.s3.bucket) if as_json else _line(event, settings.s3.bucket))
                printed += 1
        finally:
            await sub.unsubscribe()


def _line(e: ObjectEvent, bucket: str) -> str:
    zones = ",".join(e.entered_zones) or "-"
    changed = ",".join(e.changes) or ("stationary" if e.stationary else "-")
    snapshot = f"s3://{bucket}/{e.snapshot_key}" if e.snapshot_key else "-"
    return (f"{iso(e.time)}  {e.type:<6} {e.camera}  {e.label:<10} {e.object_id}  {e.top_score:.2f}  zones {zones}  "
            f"{changed}  {snapshot}")
