"""A tracked-object event (`schemas.events.ObjectEvent`) as JSON for people and home automation: what
`spectare events tail --json` prints, the API's `/events/stream` sends and the indexer's MQTT bridge publishes.
The message's own fields (times as Unix seconds), the times again as ISO 8601 UTC (`time_iso`, `first_seen_iso`,
`last_seen_iso`) and the S3 `bucket` of `snapshot_key`, as `spectare detections tail --json` does for
detections."""

import json
from typing import Any

from spectare.core.timeparse import iso
from spectare.schemas import ObjectEvent


def event_view(event: ObjectEvent, bucket: str) -> dict[str, Any]:
    view = event.model_dump(mode="json")
    view["time_iso"], view["first_seen_iso"], view["last_seen_iso"] = (
        iso(event.time), iso(event.first_seen), iso(event.last_seen))
    view["bucket"] = bucket
    return view


def event_json(event: ObjectEvent, bucket: str) -> str:
    return json.dumps(event_view(event, bucket), separators=(",", ":"))


def event_matches(event: ObjectEvent, zone: str | None) -> bool:
    """Whether an event passes a `--zone` / `zone=` filter: the object is in the zone or has entered it."""
    return zone is None or zone in event.entered_zones or zone in event.zones
