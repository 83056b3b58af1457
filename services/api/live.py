"""Live video over WebSocket (tag `media`): `WS /cameras/byname/{name}/live`, a camera's packets remuxed (never
transcoded) into fragmented MP4 for a browser's MediaSource, starting at the latest keyframe.

Protocol. Text frames are small JSON messages, binary frames fMP4 bytes:
1. `{"type": "stream", "mime": "video/mp4; codecs=\\"avc1.64001f\\"", "codec": "h264" | "hevc", "width", "height",
   "session", "wall_time"}`, and for a camera with audio `"audio": {"codec": "aac", "sample_rate", "channels"}` and
   both codecs in `mime` (`codecs=\\"avc1.64001f,mp4a.40.2\\"`, the AAC object type from its AudioSpecificConfig):
   `mime` goes to `MediaSource.addSourceBuffer`; `wall_time` is the Unix time of decode time 0 of this stream's
   timeline, for both tracks (a frame, picture or sound, at media time t was captured at `wall_time + t`).
2. One binary init segment (`ftyp`+`moov`): track 1 video, track 2 AAC audio when the camera has it.
3. Binary media fragments (`moof`+`mdat`), each a whole number of frames in decode order, the first one starting
   at a keyframe; with audio, one `traf` per track present in it (each its own `tfdt` on its own timescale, the
   audio's the sample rate), audio from the stream's start on. Its decode time need not be 0: a player seeks to
   the start of what is buffered.
After the camera reconnects (a new session), or packets were lost, a new `stream` message and init segment come
before the fragments of the new timeline.
A viewer that falls behind (`[api] live_queue_frames` / `live_queue_bytes` waiting) gets `{"type": "skipped",
"frames": N, "reason": "..."}` and resumes at the next keyframe. Anything the client sends is ignored.

Close codes: 1008 no or bad credentials, or a cookie without a same-origin `Origin` (`authorize_websocket`; 1013
when NATS does not answer the check), 4404 unknown camera, 4408 no keyframe within
`live_first_keyframe_timeout_s` (the camera is not publishing), 4429 the client took no data for
`live_send_timeout_s` (dropped), 1011 the live source failed, 1013 NATS does not answer.

H.264 plays in Chromium's MediaSource; H.265 is served (`hvc1`) but Chromium does not play it. Audio is AAC (ingest
transcodes a camera's G.711), copied. One source per camera per process is shared by every viewer (`livehub.py`).
"""

import asyncio
import contextlib
import socket
from asyncio import BaseTransport

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from spectare.core.errors import InvalidName, NotFoundError
from spectare.media.fragments import Fragment

from .auth import authorize_websocket, close_reason
from .livehub import LiveHub, Skipped, StreamStart, Viewer
from .state import ApiState

router = APIRouter(tags=["media"])

CLOSE_UNKNOWN_CAMERA, CLOSE_NOT_PUBLISHING, CLOSE_TOO_SLOW = 4404, 4408, 4429
CLOSE_TRY_AGAIN, CLOSE_SOURCE_FAILED = 1013, 1011
REGISTRY_TIMEOUT_S = 5.0
CLOSE_WAIT_S = 2.0  # a close frame to a client that reads nothing would wait forever


def websocket_protocol(send_buffer_bytes: int) -> type[WebSocketsSansIOProtocol]:
    """uvicorn's WebSocket protocol with the socket's kernel send buffer capped. Left to autotuning, a loopback or
    LAN socket whose reader stalls takes megabytes (tens of seconds of video) that no queue here can see, so a
    viewer would be that far behind before it is moved forward; capped, it is at most this (Linux doubles it) plus
    the transport's 64 KB."""

    class LiveWebSocketProtocol(WebSocketsSansIOProtocol):
        def connection_made(self, transport: BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
            super().connection_made(transport)

    return LiveWebSocketProtocol


def live_hub(websocket: WebSocket) -> LiveHub:
    """The app's hub, made by its first viewer (an app has one; routers keep no state of their own)."""
    app = websocket.app
    hub: LiveHub | None = getattr(app.state, "live", None)
    if hub is None:
        state: ApiState = app.state.api
        hub = app.state.live = LiveHub(state.settings, state.api, state.js, app.state.metrics.registry)
    return hub


@router.websocket("/cameras/byname/{name}/live")
async def live(websocket: WebSocket, name: str) -> None:
    """The camera's live video as fragmented MP4 (protocol in this module's docstring)."""
    if await authorize_websocket(websocket, "read") is None:
        return
    state: ApiState = websocket.app.state.api
    await websocket.accept()
    try:
        await asyncio.wait_for(state.registry.get(name), REGISTRY_TIMEOUT_S)
    except (InvalidName, NotFoundError) as exc:
        await _close(websocket, CLOSE_UNKNOWN_CAMERA, close_reason(str(exc)))
        return
    except Exception as exc:  # NATS away: say so rather than calling the camera unknown
        await _close(websocket, CLOSE_TRY_AGAIN, f"cannot look the camera up: NATS does not answer "
                                                 f"({type(exc).__name__})")
        return
    hub = live_hub(websocket)
    viewer = hub.join(name)
    reader = asyncio.create_task(_ignore_input(websocket))
    try:
        code, reason = await _send(websocket, viewer, hub, reader)
        await _close(websocket, code, reason)
    except (WebSocketDisconnect, RuntimeError):  # the client left (RuntimeError: sent to a closed socket)
        pass
    finally:
        reader.cancel()
        hub.leave(viewer)


async def _send(websocket: WebSocket, viewer: Viewer, hub: LiveHub, reader: asyncio.Task) -> tuple[int, str]:
    """Send the viewer's items until the client leaves or must go: the close code and reason."""
    api = hub.api
    first = True
    while True:
        taking = asyncio.ensure_future(viewer.next())
        wait = api.live_first_keyframe_timeout_s if first else None
        done, _ = await asyncio.wait({taking, reader}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        if taking not in done:
            taking.cancel()
            if reader in done:
                raise WebSocketDisconnect()
            return CLOSE_NOT_PUBLISHING, (f"camera {viewer.camera} sent no keyframe within "
                                          f"{api.live_first_keyframe_timeout_s:g} s (is it recording? see /stats)")
        item = taking.result()
        if item is None:
            return viewer.ended or (CLOSE_SOURCE_FAILED, "live source ended")
        first = False
        try:
            await asyncio.wait_for(_send_item(websocket, item), api.live_send_timeout_s)
        except TimeoutError:
            hub.metrics.dropped.inc()
            return CLOSE_TOO_SLOW, f"took no data for {api.live_send_timeout_s:g} s"


async def _send_item(websocket: WebSocket, item: StreamStart | Fragment | Skipped) -> None:
    if isinstance(item, StreamStart):
        await websocket.send_text(item.message)
        await websocket.send_bytes(item.init)
    elif isinstance(item, Skipped):
        await websocket.send_text(item.message)
    else:
        await websocket.send_bytes(item.data)


async def _ignore_input(websocket: WebSocket) -> None:
    """Read (and drop) what the client sends, so its close frame is seen; ends when it leaves."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(websocket.close(code, reason), CLOSE_WAIT_S)
