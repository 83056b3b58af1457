"""Routes tagged `events`: tracked-object events (`new`, `update`, `end`) as server-sent events, like
`/detections/stream` (`sse.py`). Each `data:` is the JSON `spectare events tail --json` prints and MQTT
subscribers get."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from spectare.core.eventjson import event_json, event_matches
from spectare.schemas import ObjectEvent, label_token

from .auth import Read
from .models import LABEL_PATTERN, NAME_PATTERN
from .sse import subject_stream
from .state import State

router = APIRouter(tags=["events"])


@router.get("/events/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`event: object`, `data:` an ObjectEvent as JSON, one per message"}})
async def event_stream(_token: Read, state: State,
                       camera: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
                       label: Annotated[str | None, Query(pattern=LABEL_PATTERN)] = None,
                       zone: Annotated[str | None, Query(pattern=LABEL_PATTERN,
                                                         description="only objects in or having entered this zone")]
                       = None) -> StreamingResponse:
    """Live tracked-object events as server-sent events (`new EventSource(...)` in a browser), optionally of one
    camera, label and zone. Comment lines keep an idle stream open; it closes after `sse_max_s` and browsers
    reconnect."""
    subject = state.settings.names.events(camera or "*", label_token(label) if label else "*")
    wanted_zone, bucket = label_token(zone) if zone else None, state.settings.s3.bucket

    def render(data: bytes) -> str | None:
        event = ObjectEvent.decode(data)
        return f"event: object\ndata: {event_json(event, bucket)}\n\n" if event_matches(event, wanted_zone) else None

    return await subject_stream(state, subject, render)
