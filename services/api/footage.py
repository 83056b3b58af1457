"""Routes tagged `footage` on one camera: recorded chunks, the timeline (spans and gaps, `timeline.py`), clip
export and download, the latest snapshot (kept per keyframe, `stills.py`), detection snapshots. (`/search`,
tagged `footage` too, has its own module.)"""

import asyncio
import shutil
import tempfile
import time
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from nats.js.errors import NotFoundError as StreamMsgNotFound
from pydantic import Field

from spectare.core.errors import NotFoundError, SpectareError
from spectare.media.clipexport import chunks_between, make_clip, store_clip
from spectare.schemas import Keyframe
from spectare.schemas.keys import clip_key
from spectare.schemas.queries import ChunksResponse

from .auth import Read
from .errors import ApiError
from .httpcache import etag_matches
from .links import clip_key_of, clip_path, download_name, snapshot_key_of
from .models import ClipMade, Problem
from .objects import stream_object
from .params import CamName, TimeParam, span
from .state import ApiState, State
from .stills import StillCache, get_stills, keyframe_etag
from .timeline import (
    MAX_GAPS,
    MAX_JOIN_S,
    Timeline,
    TimelineRangeError,
    gaps_sql,
    spans_sql,
    timeline_answer,
    timeline_range,
)

router = APIRouter(tags=["footage"])
IMMUTABLE = "private, max-age=31536000, immutable"  # a snapshot key is written once and never overwritten
Stills = Annotated[StillCache, Depends(get_stills)]


class ClipAnswer(ClipMade):
    download: str = Field(description="API path (from the API's root) downloading the clip through the API, as an "
                                      "attachment: for browsers, which may not reach S3")


@router.get("/cameras/byname/{name}/footage", response_model=ChunksResponse, responses={404: {"model": Problem}})
async def footage(name: CamName, _token: Read, state: State, start: TimeParam = None, end: TimeParam = None,
                  limit: Annotated[int | None, Query(ge=1, le=100_000)] = None) -> JSONResponse:
    """Chunks (with presigned download URLs) and gaps overlapping start..end (default: the last hour)."""
    t0, t1 = span(start, end, 3600)
    answer = await state.index().chunks(name, t0, t1, limit=limit)
    return JSONResponse(answer.model_dump(mode="json"))


@router.get("/cameras/byname/{name}/timeline", response_model=Timeline,
            responses={404: {"model": Problem}, 422: {"model": Problem}})
async def camera_timeline(name: CamName, _token: Read, state: State, start: TimeParam = None, end: TimeParam = None,
                          join_s: Annotated[float, Query(ge=0, le=MAX_JOIN_S, description=(
                              "chunks starting within this many seconds of the previous end make one span (pass the "
                              "timeline's seconds per pixel); gaps shorter than it are left out"))] = 1.0,
                          ) -> JSONResponse:
    """What the camera recorded from start to end (default: the day before now): spans of footage and the
    recorded gaps with their reasons, for a timeline. At most `[api] timeline_max_spans` spans (and 1000 gaps);
    past that, `truncated`."""
    try:
        t0, t1 = timeline_range(start, end, time.time(), join_s)
    except TimelineRangeError as exc:
        raise ApiError(422, str(exc)) from None
    index = state.index()
    max_spans, max_gaps = state.api.timeline_max_spans, min(state.api.timeline_max_spans, MAX_GAPS)
    spans, gaps = await asyncio.gather(index.sql(spans_sql(name, t0, t1, join_s, max_spans), max_rows=max_spans + 1),
                                       index.sql(gaps_sql(name, t0, t1, join_s, max_gaps), max_rows=max_gaps + 1))
    if not spans.rows and not gaps.rows:
        await index.chunks(name, t0, t1, limit=1)  # 404 for a camera the index does not know
    answer = timeline_answer(name, t0, t1, spans.rows, gaps.rows, max_spans, max_gaps)
    answer["truncated"] = answer["truncated"] or spans.truncated or gaps.truncated  # the indexer's own row cap
    return JSONResponse(answer)


@router.post("/cameras/byname/{name}/clip", response_model=ClipAnswer, responses={404: {"model": Problem}})
async def clip(name: CamName, _token: Read, state: State, request: Request,
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
            "download": clip_path(request.scope.get("root_path", ""), name, key),
            "start": made.start, "end": made.end, "frames": made.frames, "chunks": made.chunks, "bytes": size,
            "gaps": [g.model_dump(mode="json") for g in gaps]}


@router.get("/cameras/byname/{name}/clips/{file}.mp4", response_class=Response,
            responses={200: {"content": {"video/mp4": {}}, "description": "the clip, as an attachment"},
                       404: {"model": Problem, "description": "no such clip (exported clips expire with the bucket's "
                                                              "lifecycle rules, if any)"},
                       422: {"model": Problem, "description": "not a clip name"}})
async def clip_download(name: CamName, _token: Read, state: State, request: Request,
                        file: Annotated[str, Path(description="`<start>-<end>` as the clip's key has them "
                                                              "(`download` of POST .../clip)")]) -> Response:
    """An exported clip (POST .../clip), streamed from the bucket with `Content-Disposition: attachment`."""
    key = clip_key_of(name, file)
    if key is None:
        raise ApiError(422, "not a clip of this camera: give the path POST .../clip answered in `download`, "
                            "clips/<YYYYMMDDTHHMMSS.mmmZ>-<YYYYMMDDTHHMMSS.mmmZ>.mp4")
    return await stream_object(request, state, key, "video/mp4", {
        "Content-Disposition": f'attachment; filename="{download_name(name, file)}"',
        "Cache-Control": "private, no-cache"})  # the same range exported again is written over


@router.get("/cameras/byname/{name}/snapshots/{tail:path}", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "the snapshot"},
                       404: {"model": Problem, "description": "no such snapshot (or it was deleted by retention)"},
                       422: {"model": Problem, "description": "not a snapshot key of this camera"}})
async def detection_snapshot(name: CamName, _token: Read, state: State, request: Request,
                             tail: Annotated[str, Path(description="the snapshot key after `snapshots/<name>/`: "
                                                                   "YYYY/MM/DD/HH/<stamp>-<session>-<seq>.jpg (an "
                                                                   "incident's `snapshot` in /search is this path)")],
                             ) -> Response:
    """A detection's snapshot (the keyframe with its boxes drawn) streamed from the bucket; cacheable for good."""
    key = snapshot_key_of(name, tail)
    if key is None:
        raise ApiError(422, "not a snapshot of this camera: give the path /search answers as `snapshot`, "
                            "snapshots/YYYY/MM/DD/HH/<stamp>-<session>-<seq>.jpg")
    return await stream_object(request, state, key, "image/jpeg",
                               {"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"})


@router.get("/cameras/byname/{name}/snapshot.jpg", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "the picture"},
                       304: {"description": "the picture named in If-None-Match is still the latest"},
                       404: {"model": Problem, "description": "unknown camera, or no recent keyframe"}})
async def snapshot(name: CamName, _token: Read, state: State, stills: Stills, request: Request) -> Response:
    """The camera's latest keyframe as a JPEG (keyframes are kept for a couple of minutes). Its ETag names the
    keyframe: poll with `If-None-Match` and get 304 until there is a new one (about every second). Each keyframe
    is encoded once per API process, however many viewers ask."""
    names = state.settings.names
    await state.registry.get(name)
    try:
        message = await state.js.get_last_msg(names.keyframes_stream, names.keyframes(name))
    except StreamMsgNotFound:
        raise NotFoundError(f"camera {name} has sent no keyframe recently (is it recording? see /stats)") from None
    try:
        keyframe = Keyframe.decode(message.data or b"")
        etag = keyframe_etag(keyframe.session, keyframe.seq)
        headers = {"Cache-Control": "private, no-cache", "ETag": etag}
        if etag_matches(request.headers.get("if-none-match"), etag):
            stills.not_modified()
            return Response(status_code=304, headers=headers)
        jpeg = await stills.jpeg(name, etag, lambda: asyncio.to_thread(_jpeg, keyframe))
    except SpectareError as exc:  # garbage or an undecodable picture on the stream: not the client's fault
        raise ApiError(502, f"camera {name}'s last keyframe cannot be shown: {exc}") from None
    return Response(jpeg, media_type="image/jpeg", headers=headers)


def _jpeg(keyframe: Keyframe) -> bytes:
    import cv2

    from spectare.media.frames import decode_keyframe, to_bgr

    ok, encoded = cv2.imencode(".jpg", to_bgr(decode_keyframe(keyframe)), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise SpectareError("the keyframe could not be encoded as JPEG")
    return encoded.tobytes()


def _export(state: ApiState, refs: list, start: float, end: float, key: str) -> tuple[Any, str, int]:
    work = FilePath(tempfile.mkdtemp(prefix="spectare-api-clip-"))
    try:
        made = make_clip(refs, start, end, work)
        size = made.path.stat().st_size
        return made, store_clip(state.settings.s3, made.path, key, state.api.clip_expiry_s), size
    finally:
        shutil.rmtree(work, ignore_errors=True)
