"""Routes tagged `footage` on one camera: recorded chunks, clip export, the latest snapshot. (`/search`, tagged
`footage` too, has its own module.)"""

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from nats.js.errors import NotFoundError as StreamMsgNotFound

from spectare.core.errors import NotFoundError, SpectareError
from spectare.media.clipexport import chunks_between, make_clip, store_clip
from spectare.schemas import Keyframe
from spectare.schemas.keys import clip_key
from spectare.schemas.queries import ChunksResponse

from .auth import Read
from .errors import ApiError
from .models import ClipMade, Problem
from .params import CamName, TimeParam, span
from .state import ApiState, State

router = APIRouter(tags=["footage"])


@router.get("/cameras/byname/{name}/footage", response_model=ChunksResponse, responses={404: {"model": Problem}})
async def footage(name: CamName, _token: Read, state: State, start: TimeParam = None, end: TimeParam = None,
                  limit: Annotated[int | None, Query(ge=1, le=100_000)] = None) -> JSONResponse:
    """Chunks (with presigned download URLs) and gaps overlapping start..end (default: the last hour)."""
    t0, t1 = span(start, end, 3600)
    answer = await state.index().chunks(name, t0, t1, limit=limit)
    return JSONResponse(answer.model_dump(mode="json"))


@router.post("/cameras/byname/{name}/clip", response_model=ClipMade, responses={404: {"model": Problem}})
async def clip(name: CamName, _token: Read, state: State,
               start: Annotated[str, Query(max_length=100, description="clip start (see /search for forms)")],
               end: Annotated[str, Query(max_length=100, description="clip end")]) -> dict[str, Any]:
    """Export start..end as one MP4 (no re-encoding) into the bucket and answer its presigned URL. The clip
    starts at the keyframe at or before `start`; a stretch without footage stays a jump in time."""
    t0, t1 = span(start, end, 0, state.api.max_clip_s)
    refs, gaps = await chunks_between(state.index(), name, t0, t1)
    if not refs:
        raise NotFoundError(f"camera {name} has no recorded footage in that range")
    key = clip_key(name, t0, t1)
    async with state.clip_slots:
        made, url, size = await asyncio.to_thread(_export, state, refs, t0, t1, key)
    return {"camera": name, "key": key, "url": url, "expires_in_s": state.api.clip_expiry_s,
            "start": made.start, "end": made.end, "frames": made.frames, "chunks": made.chunks, "bytes": size,
            "gaps": [g.model_dump(mode="json") for g in gaps]}


@router.get("/cameras/byname/{name}/snapshot.jpg", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "the picture"},
                       404: {"model": Problem, "description": "unknown camera, or no recent keyframe"}})
async def snapshot(name: CamName, _token: Read, state: State) -> Response:
    """The camera's latest keyframe as a JPEG (keyframes are kept for a couple of minutes)."""
    names = state.settings.names
    await state.registry.get(name)
    try:
        message = await state.js.get_last_msg(names.keyframes_stream, names.keyframes(name))
    except StreamMsgNotFound:
        raise NotFoundError(f"camera {name} has sent no keyframe recently (is it recording? see /stats)") from None
    try:
        jpeg = await asyncio.to_thread(_jpeg, Keyframe.decode(message.data or b""))
    except SpectareError as exc:  # garbage or an undecodable picture on the stream: not the client's fault
        raise ApiError(502, f"camera {name}'s last keyframe cannot be shown: {exc}") from None
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def _jpeg(keyframe: Keyframe) -> bytes:
    import cv2

    from spectare.media.frames import decode_keyframe, to_bgr

    ok, encoded = cv2.imencode(".jpg", to_bgr(decode_keyframe(keyframe)), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise SpectareError("the keyframe could not be encoded as JPEG")
    return encoded.tobytes()


def _export(state: ApiState, refs: list, start: float, end: float, key: str) -> tuple[Any, str, int]:
    work = Path(tempfile.mkdtemp(prefix="spectare-api-clip-"))
    try:
        made = make_clip(refs, start, end, work)
        size = made.path.stat().st_size
        return made, store_clip(state.settings.s3, made.path, key, state.api.clip_expiry_s), size
    finally:
        shutil.rmtree(work, ignore_errors=True)
