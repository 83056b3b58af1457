"""`spectare detections ...`: what the detector found."""

import asyncio
import json
import time
from datetime import UTC, datetime

import click
from nats.js.api import ConsumerConfig, DeliverPolicy

from spectare.core.bus import connected
from spectare.core.config import load_settings
from spectare.core.errors import SchemaError
from spectare.core.timeparse import iso, parse_duration, since
from spectare.schemas import Detection, camera_name, label_token


@click.group()
def detections() -> None:
    """Watch detections (people, vehicles, ...) as they happen."""


@detections.command("tail")
@click.option("--camera", help="Only this camera.")
@click.option("--label", help="Only this label, e.g. person, car, truck.")
@click.option("--since", "since_text", help="Start this far back (90s, 15m, 2h) instead of with new detections.")
@click.option("-n", "--count", type=click.IntRange(1), help="Stop after this many detections.")
@click.option("--for", "for_text", help="Stop after this long (30s, 5m).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def tail(camera: str | None, label: str | None, since_text: str | None, count: int | None, for_text: str | None,
         as_json: bool) -> None:
    """Print detections live, as an alert consumer receives them, until Ctrl-C.

    Each line: time, camera, label, score, box (x1 y1 x2 y2 as shares of the picture) and the S3 key of
    the snapshot (download it with `spectare footage get KEY -o snap.jpg`).
    """
    if camera:
        camera_name(camera)
    label = label_token(label) if label else None
    start = since(since_text) if since_text else None
    deadline = time.monotonic() + parse_duration(for_text) if for_text else None
    asyncio.run(_tail(camera, label, start, count, deadline, as_json))


async def _tail(camera: str | None, label: str | None, start: float | None, count: int | None,
                deadline: float | None, as_json: bool) -> None:
    settings = load_settings()
    names = settings.names
    subject = names.detections(camera or "*", label or "*")
    printed = 0
    async with connected(settings, "cli-detections") as nc:
        js = nc.jetstream()
        options: dict = {"deliver_policy": DeliverPolicy.NEW}
        if start is not None:
            options = {"deliver_policy": DeliverPolicy.BY_START_TIME,
                       "opt_start_time": datetime.fromtimestamp(start, UTC).isoformat()}
        sub = await js.subscribe(subject, stream=names.detections_stream, ordered_consumer=True,
                                 config=ConsumerConfig(**options))
        if not as_json:
            click.echo(f"waiting for detections on {subject} (Ctrl-C to stop)", err=True)
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
                    detection = Detection.decode(msg.data)
                except SchemaError as exc:
                    click.echo(f"skipped an unreadable message on {msg.subject}: {exc}", err=True)
                    continue
                click.echo(_line(detection, settings.s3.bucket, as_json))
                printed += 1
        finally:
            await sub.unsubscribe()


def _line(d: Detection, bucket: str, as_json: bool) -> str:
    if as_json:
        view = d.model_dump(mode="json")
        view["time_iso"] = iso(d.time)
        view["bucket"] = bucket
        return json.dumps(view)
    box = " ".join(f"{v:.2f}" for v in d.box)
    snapshot = f"s3://{bucket}/{d.snapshot_key}" if d.snapshot_key else "-"
    return f"{iso(d.time)}  {d.camera}  {d.label:<10} {d.score:.2f}  [{box}]  {d.model}  {snapshot}"
