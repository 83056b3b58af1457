"""Routes tagged `media`: recorded footage played as HLS. A camera's playlist for a range
(`/cameras/byname/{name}/vod.m3u8`), its segments passed through from S3 (`.../segments/<key tail>`), and the
hour windows a long range is played in (`.../vod/windows`). The playlist text is built by `playlists.py`.

Segments come through the API, not as presigned S3 URLs: the browser needs no CORS on the bucket, S3 may stay on a
private network, and the bearer token or session cookie works for every player (ffmpeg passes `-headers` on to
segment requests, hls.js sends the cookie). The cost is the API's bandwidth: about a camera's bitrate per viewer.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from minio import Minio
from urllib3 import BaseHTTPResponse

from spectare.core.config import S3Settings
from spectare.core.store import s3_client, s3_errors
from spectare.media import fmp4
from spectare.media.clipexport import chunks_between
from spectare.schemas.keys import FOOTAGE_PREFIX

from .auth import Read
from .errors import ApiError
from .models import Problem
from .params import CamName, TimeParam
from .playlists import (
    MIME_TYPE,
    PlaylistRangeError,
    media_playlist,
    pinned_query,
    playlist_range,
    segment_path,
    window_s,
    windows,
    windows_range,
    windows_sql,
)
from .retime import HEADER_BYTES, MAX_INDEX_BOX, Retimer, box_header, retime
from .state import ApiState, State

router = APIRouter(tags=["media"])

READ_BYTES = 256 * 1024  # one read from S3, one piece of the answer
MAX_CHUNK_BYTES = 256 * 1024 * 1024  # an old plain chunk is remuxed in memory; nothing recorded comes near
IMMUTABLE = "private, max-age=31536000, immutable"  # a key is written once and never overwritten
PLAYLIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {MIME_TYPE: {}}, "description": "the HLS media playlist"},
    307: {"description": "a range that is still growing, asked with relative times (`10m`): the same playlist "
                         "with both times in Unix seconds, so that reloading it lists the same chunks and more"},
    404: {"model": Problem, "description": "unknown camera"},
    422: {"model": Problem, "description": "an unreadable time, end before start, or a range over playlist_max_s"},
}


def _refuse_range(exc: PlaylistRangeError) -> ApiError:
    return ApiError(422, str(exc))


@router.get("/cameras/byname/{name}/vod.m3u8", response_class=Response, responses=PLAYLIST_RESPONSES)
async def vod_playlist(name: CamName, _token: Read, state: State, start: TimeParam = None,
                       end: TimeParam = None) -> Response:
    """The camera's chunks overlapping start..end as an HLS playlist (version 7, fMP4 segments, a program date
    and time on every segment, discontinuities at gaps and session changes). Without `end`: start .. start +
    playlist_max_s; without `start`: the playlist_max_s before end. A range reaching now (or ending less than
    30 s, or two chunk lengths, ago) is an EVENT playlist that grows as chunks land (players reload it);
    otherwise VOD with ENDLIST. A range with no footage is a valid playlist with no segments."""
    now = time.time()
    try:
        rng = playlist_range(start, end, now, state.api.playlist_max_s)
    except PlaylistRangeError as exc:
        raise _refuse_range(exc) from None
    chunks, gaps = await chunks_between(state.index(), name, rng.start, rng.end)
    playlist = media_playlist(name, chunks, gaps, rng.start, rng.end, now)
    if not playlist.closed and not rng.pinned:
        # `start=10m` means another moment on every reload: pin the range, so the growing playlist keeps its start.
        return RedirectResponse(f"vod.m3u8?{pinned_query(rng)}", 307, headers={"Cache-Control": "no-store"})
    cache = "private, max-age=60" if playlist.closed else "private, no-cache"
    return Response(playlist.text, media_type=MIME_TYPE, headers={"Cache-Control": cache})


@router.get("/cameras/byname/{name}/vod/windows", responses={404: {"model": Problem}, 422: {"model": Problem}})
async def vod_windows(name: CamName, _token: Read, state: State, request: Request, start: TimeParam = None,
                      end: TimeParam = None,
                      limit: Annotated[int, Query(ge=1, le=5000, description="most windows in one answer")] = 744,
                      ) -> JSONResponse:
    """The windows of start..end (default: the last day) that hold footage: hour-aligned hours (playlist_max_s
    when shorter), each with its playlist range, chunk count, recorded seconds and playlist URL (from the API's
    root). A player plays one window's playlist and loads the next window's when it ends. A chunk belongs to the
    window its start falls in, so consecutive windows share none. Without `end` the last window's playlist runs
    to the end of its hour (EVENT while the hour lasts). More than `limit` windows: `truncated`, and
    `next_start` says where to ask again."""
    now = time.time()
    try:
        t0, t1 = windows_range(start, end, now)
    except PlaylistRangeError as exc:
        raise _refuse_range(exc) from None
    index = state.index()
    await index.chunks(name, t0, t1, limit=1)  # 404 for a camera the index does not know
    length = window_s(state.api.playlist_max_s)
    rows = (await index.sql(windows_sql(name, t0, t1, length, limit), max_rows=limit + 1)).rows
    path = f"{request.scope.get('root_path', '')}/cameras/byname/{name}/vod.m3u8"
    answer = windows(rows, path, t0, None if end is None else t1, length, limit)
    return JSONResponse({"camera": name, "start": t0, "end": t1, **answer})


@router.get("/cameras/byname/{name}/segments/{tail:path}", response_class=Response,
            responses={200: {"content": {"video/mp4": {}}, "description": "the chunk as fragmented MP4, its media "
                                                                         "time moved to its place in the playlist"},
                       404: {"model": Problem, "description": "no such chunk (or camera)"},
                       422: {"model": Problem, "description": "not a chunk key of this camera"},
                       502: {"model": Problem, "description": "the stored chunk is no MP4 that can be served"}})
async def segment(name: CamName, _token: Read, state: State, request: Request,
                  tail: Annotated[str, Path(description="as playlists list it: `at/<ms>/` (the segment's position "
                                                        "in its playlist; left out: 0), then the chunk key after "
                                                        "`footage/<name>/`: YYYY/MM/DD/HH/<stamp>-<session>-<seq>"
                                                        ".mp4")],
                  ) -> Response:
    """One recorded chunk as fragmented MP4, streamed from S3, its timestamps moved to its position in the
    playlist (`at/<ms>/`), so that the segments of a playlist make one timeline in every player; a chunk stored
    as plain MP4 is remuxed first. Keys are never overwritten, so the answer is cacheable forever."""
    parsed = segment_path(tail)
    if parsed is None:
        raise ApiError(422, "not a chunk of this camera: give the path after segments/ as the playlist lists it, "
                            "[at/<ms>/]YYYY/MM/DD/HH/<stamp>-<session>-<seq>.mp4")
    at_ms, chunk_tail = parsed
    key = f"{FOOTAGE_PREFIX}/{name}/{chunk_tail}"
    settings = state.settings.s3
    with s3_errors(settings, f"reading chunk {key}"):
        response = await asyncio.to_thread(_s3(request, state).get_object, settings.bucket, key)
    source = _S3Stream(response, settings, key)
    retimer = Retimer(at_ms)
    headers = {"Cache-Control": IMMUTABLE}
    try:
        await source.fill(READ_BYTES)
        if _fragmented(bytes(source.buffer)) is True:
            pieces = _retimed(source, retimer)
            first = [await anext(pieces)]
            while retimer.offsets is None:  # up to the moov: a chunk we cannot serve is refused before any byte
                first.append(await anext(pieces))
            size = response.headers.get("Content-Length")  # moving keeps every box's size
            if size:
                headers["Content-Length"] = size
            return StreamingResponse(_chained(first, pieces), media_type="video/mp4", headers=headers)
        await source.fill(MAX_CHUNK_BYTES + 1)
        if len(source.buffer) > MAX_CHUNK_BYTES:
            raise fmp4.Mp4Error(f"a plain MP4 over {MAX_CHUNK_BYTES >> 20} MB is not remuxed for playback")
        data = source.take(len(source.buffer))
        source.close()
        fragmented = await asyncio.to_thread(lambda: retime(fmp4.to_fragmented(data), at_ms))
    except (fmp4.Mp4Error, StopAsyncIteration) as exc:
        source.close()
        raise ApiError(502, f"chunk {key} cannot be served: {str(exc) or 'it ends before its moov'}") from None
    except BaseException:
        source.close()
        raise
    return Response(fragmented, media_type="video/mp4", headers=headers)


class _S3Stream:
    """An S3 object being read, READ_BYTES at a time in a worker thread, with what has been read but not taken."""

    def __init__(self, response: BaseHTTPResponse, settings: S3Settings, key: str) -> None:
        self.response, self.settings, self.key = response, settings, key
        self.buffer = bytearray()
        self.ended = False

    async def fill(self, size: int) -> None:
        """Read until `size` bytes are buffered or the object ends."""
        while len(self.buffer) < size and not self.ended:
            with s3_errors(self.settings, f"reading chunk {self.key}"):
                piece = await asyncio.to_thread(self.response.read, READ_BYTES)
            if piece:
                self.buffer += piece
            else:
                self.ended = True

    def take(self, size: int) -> bytes:
        piece = bytes(self.buffer[:size])
        del self.buffer[:size]
        return piece

    def close(self) -> None:
        self.response.close()
        self.response.release_conn()


async def _retimed(source: _S3Stream, retimer: Retimer) -> AsyncIterator[bytes]:
    """The object's top-level boxes moved by `retimer`, in pieces of at most READ_BYTES but for the small boxes
    `Retimer` takes whole (moov, moof, mfra); an `mdat` passes through as it is read."""
    try:
        while True:
            await source.fill(HEADER_BYTES)
            if not source.buffer:
                return
            header = box_header(source.buffer)
            if header is None:
                raise fmp4.Mp4Error(f"{len(source.buffer)} stray bytes at the end")
            kind, size, _ = header
            if kind in Retimer.RETIMED:
                if size is None or size > MAX_INDEX_BOX:
                    raise fmp4.Mp4Error(f"a {kind!r} box of {size or 'unknown'} bytes")
                await source.fill(size)
                if len(source.buffer) < size:
                    raise fmp4.Mp4Error(f"box {kind!r} is cut off")
                yield retimer.feed(kind, source.take(size))
                continue
            left = size  # None: to the end of the object
            while left is None or left > 0:
                await source.fill(1)
                if not source.buffer:
                    if left is None:
                        return
                    raise fmp4.Mp4Error(f"box {kind!r} is cut off")
                piece = source.take(len(source.buffer) if left is None else left)
                if left is not None:
                    left -= len(piece)
                yield piece
    finally:
        source.close()


async def _chained(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for piece in first:
        yield piece
    async for piece in rest:
        yield piece


def _fragmented(head: bytes) -> bool | None:
    """From a chunk's first bytes: whether it is fragmented MP4 (a `moof`, or a `moov` announcing fragments, before
    any `mdat`), None when the head ends before that is known."""
    at = 0
    while at + 8 <= len(head):
        size, kind = int.from_bytes(head[at:at + 4], "big"), head[at + 4:at + 8]
        if size == 1 and at + 16 <= len(head):
            size = int.from_bytes(head[at + 8:at + 16], "big")
        if kind == b"moof":
            return True
        if kind == b"mdat":
            return False
        if kind == b"moov":
            return fmp4.is_fragmented(head[at:at + size]) if at + size <= len(head) else None
        if size < 8:
            return None
        at += size
    return None


def _s3(request: Request, state: ApiState) -> Minio:
    """One minio client per app (its connection pool is reused from segment to segment)."""
    client: Minio | None = getattr(request.app.state, "media_s3", None)
    if client is None:
        client = request.app.state.media_s3 = s3_client(state.settings.s3)
    return client
