"""Routes tagged `detections`: live detections as server-sent events (`sse.py`: a plain NATS subscription per
client, nothing kept on the server)."""

import json
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from spectare.schemas import Detection, label_token

from .auth import Read
from .models import LABEL_PATTERN, NAME_PATTERN
from .sse import subject_stream
from .state import State

router = APIRouter(tags=["detections"])


@router.get("/detections/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`event: detection`, `data:` a Detection as JSON, one per event"}})
async def detection_stream(_token: Read, state: State,
                           camera: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
                           label: Annotated[str | None, Query(pattern=LABEL_PATTERN)] = None) -> StreamingResponse:
    """Live detections as server-sent events (`new EventSource(...)` in a browser), optionally of one camera
    and one label. Comment lines keep an idle stream open; it closes after `sse_max_s` and browsers
    reconnect."""
    subject = state.settings.names.detections(camera or "*", label_token(label) if label else "*")

    def render(data: bytes) -> str:
        return f"event: detection\ndata: {json.dumps(Detection.decode(data).model_dump(mode='json'))}\n\n"

    return await subject_stream(state, subject, render)
