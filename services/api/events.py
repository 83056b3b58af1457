"""Routes tagged `events`: tracked-object events (`new`, `update`, `end`) as server-sent events, like
`/detections/stream`: a plain NATS subscription per client (nothing kept on the server), at most `sse_buffer`
queued (a slow client loses the oldest), a comment every `sse_ping_s`, closed after `sse_max_s` (EventSource
reconnects). Each `data:` is the JSON `spectare events tail --json` prints and MQTT subscribers get."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from spectare.core.errors import SchemaError
from spectare.core.eventjson import event_json, event_matches
from spectare.schemas import ObjectEvent, label_token

from .auth import Read
from .models import LABEL_PATTERN, NAME_PATTERN
from .settings import ApiSettings
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
    queue: asyncio.Queue = asyncio.Queue(maxsize=state.api.sse_buffer)

    async def collect(msg: Any) -> None:
        if queue.full():
            queue.get_nowait()  # a slow client loses the oldest, never stalls the connection
        queue.put_nowait(msg.data)

    sub = await state.nc.subscribe(subject, cb=collect)
    stream = _events(state.api, queue, sub, label_token(zone) if zone else None, state.settings.s3.bucket)
    return StreamingResponse(stream, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(api: ApiSettings, queue: asyncio.Queue, sub: Any, zone: str | None,
                  bucket: str) -> AsyncIterator[str]:
    """The server-sent events of one client until it leaves or `sse_max_s` passes."""
    deadline = time.monotonic() + api.sse_max_s
    try:
        yield "retry: 2000\n: connected\n\n"
        while (left := deadline - time.monotonic()) > 0:
            try:
                data = await asyncio.wait_for(queue.get(), min(api.sse_ping_s, left))
            except TimeoutError:
                yield ": ping\n\n"
                continue
            try:
                event = ObjectEvent.decode(data)
            except SchemaError:
                continue  # garbage on an events subject is not the browser's problem
            if event_matches(event, zone):
                yield f"event: object\ndata: {event_json(event, bucket)}\n\n"
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
