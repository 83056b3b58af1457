"""Server-sent events from a NATS subject, shared by `/detections/stream` and `/events/stream`: a plain
subscription per client (nothing kept on the server), at most `sse_buffer` messages queued (a slow client loses
the oldest), a comment every `sse_ping_s`, closed after `sse_max_s` (EventSource reconnects; its `retry` is 2 s)."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.responses import StreamingResponse

from spectare.core.errors import SchemaError

from .settings import ApiSettings
from .state import ApiState

# One message's event text (`event: ...\ndata: ...\n\n`), or None to send nothing for it; SchemaError: garbage.
Render = Callable[[bytes], str | None]


async def subject_stream(state: ApiState, subject: str, render: Render) -> StreamingResponse:
    queue: asyncio.Queue = asyncio.Queue(maxsize=state.api.sse_buffer)

    async def collect(msg: Any) -> None:
        if queue.full():
            queue.get_nowait()  # a slow client loses the oldest, never stalls the connection
        queue.put_nowait(msg.data)

    sub = await state.nc.subscribe(subject, cb=collect)
    return StreamingResponse(_stream(state.api, queue, sub, render), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _stream(api: ApiSettings, queue: asyncio.Queue, sub: Any, render: Render) -> AsyncIterator[str]:
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
                text = render(data)
            except SchemaError:
                continue  # garbage on the subject is not the browser's problem
            if text is not None:
                yield text
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
