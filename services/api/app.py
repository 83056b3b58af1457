"""The FastAPI application: routes, auth, error answers. Stateless: everything it knows is in NATS (registry,
tokens, leases, streams), S3 and the indexer, so any number of replicas answer alike."""

import asyncio
import contextlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NoKeysError
from nats.js.errors import NotFoundError as StreamMsgNotFound
from nats.js.kv import KeyValue
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from spectare import __version__
from spectare.core.config import Settings
from spectare.core.errors import (
    CameraExists,
    InvalidName,
    NotFoundError,
    SchemaError,
    SpectareError,
    UnreachableError,
)
from spectare.core.indexclient import IndexClient, IndexQueryError, QueryTimeout
from spectare.core.leases import LeaseTable
from spectare.core.redact import redact
from spectare.core.registry import CameraRegistry
from spectare.core.tokens import TokenStore, allows
from spectare.media.clipexport import chunks_between, make_clip, store_clip
from spectare.schemas import ApiToken, CameraConfig, Detection, Keyframe, label_token
from spectare.schemas.keys import clip_key
from spectare.schemas.names import TOKEN_RULE
from spectare.schemas.queries import ChunksResponse, SearchResponse

from . import probes
from .middleware import ApiMetrics, BodyLimit, MetricsMiddleware
from .models import (
    LABEL_PATTERN,
    NAME_PATTERN,
    NULLABLE,
    URL_PATTERN,
    CameraBody,
    CameraCreate,
    CameraPatch,
    CameraView,
    ClipMade,
    Problem,
    Stats,
    TokenInfo,
    camera_view,
)
from .rules import camera_state, edited, null_fields, rate, time_range, workers_needed
from .settings import ApiSettings

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answer: HTTP status and one line."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


@dataclass
class ApiState:
    settings: Settings
    api: ApiSettings
    nc: NATS
    js: JetStreamContext
    registry: CameraRegistry
    tokens: TokenStore
    leases: KeyValue
    per_worker: int
    clip_slots: asyncio.Semaphore

    @classmethod
    async def open(cls, settings: Settings, api: ApiSettings, nc: NATS, per_worker: int) -> "ApiState":
        js = nc.jetstream()
        registry, tokens = await CameraRegistry.open(js, settings), await TokenStore.open(js, settings)
        leases = await js.key_value(settings.names.leases_bucket)
        return cls(settings, api, nc, js, registry, tokens, leases, per_worker, asyncio.Semaphore(api.concurrent_clips))

    def index(self, timeout_s: float | None = None) -> IndexClient:
        return IndexClient(self.nc, self.settings, timeout_s=timeout_s or self.api.index_timeout_s)


PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "a parameter that cannot be used: an unreadable time, a range that ends "
                                           "before it starts or is too long, a body that does not parse"},
    401: {"model": Problem, "description": "no token, or an unknown or revoked one"},
    403: {"model": Problem, "description": "the token's scope does not allow this"},
    404: {"model": Problem, "description": "no such camera (or nothing recorded where asked)"},
    413: {"model": Problem, "description": "the request body is over the limit (64 KB by default)"},
    422: {"model": Problem, "description": "bad input: the detail says which field and what is wrong"},
    503: {"model": Problem, "description": "NATS, S3 or the indexer does not answer"},
    502: {"model": Problem, "description": "what the camera sent cannot be shown (an undecodable keyframe)"},
    504: {"model": Problem, "description": "the indexer's query ran past its time limit"},
}
TAGS = [
    {"name": "cameras", "description": "the camera registry (URL passwords are stored, never returned)"},
    {"name": "footage", "description": "recorded chunks, clips, snapshots, searches"},
    {"name": "detections", "description": "live detections as server-sent events"},
    {"name": "system", "description": "health, statistics, metrics"},
]
DESCRIPTION = """Spectare's control plane. Every endpoint but `/healthz` needs a token:
`Authorization: Bearer <token>` (`spectare token create --scope read|admin`). `read` tokens may call every
GET endpoint and export clips; changing cameras needs `admin`. Errors are JSON `{"detail": "one line"}`.
Times are Unix seconds or what `spectare` commands take (`2h`, `today 08:30`, ISO 8601)."""


def create_app(state: ApiState) -> FastAPI:
    """The app over an open ApiState (the caller owns the NATS connection)."""
    metrics = ApiMetrics()
    metrics.per_worker.set(state.per_worker)
    app = FastAPI(title="Spectare", version=__version__, description=DESCRIPTION, openapi_tags=TAGS,
                  responses=PROBLEMS)
    app.state.api = state
    app.state.metrics = metrics
    app.add_middleware(BodyLimit, max_bytes=state.api.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # added last: outermost, so it sees 413s too
    names = state.settings.names
    bearer = HTTPBearer(auto_error=False, description="an API token (`spectare token create`)")

    def require(scope: str):  # noqa: ANN202 - a FastAPI dependency
        async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> ApiToken:
            if credentials is None:
                raise ApiError(401, "missing API token: send 'Authorization: Bearer <token>' (create one with "
                                    "`spectare token create --scope read`)", {"WWW-Authenticate": "Bearer"})
            try:
                record = await asyncio.wait_for(state.tokens.verify(credentials.credentials), 5.0)
            except Exception as exc:  # NATS away: say so rather than calling the token bad
                raise ApiError(503, f"cannot check the token: NATS does not answer ({type(exc).__name__})") from None
            if record is None:
                raise ApiError(401, "unknown or revoked API token", {"WWW-Authenticate": "Bearer"})
            if not allows(record.scope, scope):
                raise ApiError(403, f"this needs an {scope} token; token {record.id} has scope {record.scope}")
            return record

        return Depends(check)

    read, admin = require("read"), require("admin")
    CamName = Annotated[str, PathParam(pattern=NAME_PATTERN, description="camera name")]

    # -- errors ------------------------------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": redact(exc.detail)}, exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_field_error(e) for e in exc.errors()]
        detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:5]) or "invalid request"
        return JSONResponse({"detail": redact(detail), "errors": errors}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @app.exception_handler(SpectareError)
    async def _spectare(_request: Request, exc: SpectareError) -> JSONResponse:
        return JSONResponse({"detail": redact(str(exc))}, _status_of(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %s", request.method, request.url.path, redact(repr(exc)), exc_info=exc)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the API's log says more"}, 500)

    # -- system ------------------------------------------------------------------------------------------------
    @app.get("/healthz", tags=["system"], responses={200: {"content": {"application/json": {}}}})
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers (no token needed; touches nothing else)."""
        return {"status": "ok"}

    @app.get("/tokens/me", tags=["system"], response_model=TokenInfo)
    async def whoami(token: Annotated[ApiToken, read]) -> dict[str, str]:
        """The token this request was made with: id, name and scope."""
        return {"id": token.id, "name": token.name, "scope": token.scope}

    @app.get("/metrics", tags=["system"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    async def prometheus(_token: Annotated[ApiToken, read]) -> Response:
        """Prometheus metrics: requests by route and status, latency, and the ingest scaling signal."""
        await refresh_scaling(state, metrics)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/stats", tags=["system"], response_model=Stats)
    async def stats(_token: Annotated[ApiToken, read]) -> dict[str, Any]:
        """System health, camera states with packet rates, consumer lag, chunks, storage and the scaling signal."""
        result = await _stats(state)
        counts = result["cameras"]
        for key in ("recording", "orphaned"):
            metrics.camera_states.labels(key).set(counts[key])
        _scaling_gauges(metrics, state, counts["total"])
        metrics.workers_live.set(result["scaling"]["ingest_workers_live"])
        return result

    # -- cameras -----------------------------------------------------------------------------------------------
    @app.get("/cameras", tags=["cameras"], response_model=list[CameraView])
    async def list_cameras(_token: Annotated[ApiToken, read]) -> list[dict[str, Any]]:
        """Every registered camera, by name."""
        return [camera_view(c) for c in await state.registry.list()]

    @app.post("/cameras", tags=["cameras"], status_code=201, response_model=CameraView,
              responses={409: {"model": Problem, "description": "a camera with that name exists"}})
    async def add_camera(body: CameraCreate, _token: Annotated[ApiToken, admin]) -> dict[str, Any]:  # type: ignore[valid-type]
        """Register a camera; within seconds an ingest worker starts recording it."""
        fields = body.model_dump(exclude={"name"})
        config = CameraConfig.create(**edited(None, body.name, fields, replace=True))
        return camera_view(await state.registry.add(config))

    @app.get("/cameras/byname/{name}", tags=["cameras"], response_model=CameraView,
             responses={404: {"model": Problem}})
    async def get_camera(name: CamName, _token: Annotated[ApiToken, read]) -> dict[str, Any]:
        """One camera's settings."""
        return camera_view(await state.registry.get(name))

    @app.put("/cameras/byname/{name}", tags=["cameras"], response_model=CameraView,
             responses={201: {"model": CameraView, "description": "created"}})
    async def put_camera(name: CamName, body: CameraBody, _token: Annotated[ApiToken, admin],  # type: ignore[valid-type]
                         response: Response) -> dict[str, Any]:
        """Create or replace a camera: fields left out take their defaults."""
        current = await _current(state, name)
        config = CameraConfig.create(**edited(current, name, body.model_dump(), replace=True))
        stored = await state.registry.put(config)
        response.status_code = 201 if current is None else 200
        return camera_view(stored)

    @app.patch("/cameras/byname/{name}", tags=["cameras"], response_model=CameraView,
               responses={404: {"model": Problem}})
    async def patch_camera(name: CamName, body: CameraPatch, _token: Annotated[ApiToken, admin]) -> dict[str, Any]:  # type: ignore[valid-type]
        """Change some of a camera's settings; detection and retention changes apply without interrupting the
        recording."""
        fields = {k: getattr(body, k) for k in body.model_fields_set}
        refused = null_fields(fields, NULLABLE)
        if refused:
            raise ApiError(422, f"{', '.join(refused)}: cannot be null (only {', '.join(sorted(NULLABLE))} can)")
        current = await state.registry.get(name)
        if not fields:
            return camera_view(current)
        config = CameraConfig.create(**edited(current, name, fields, replace=False))
        return camera_view(await state.registry.put(config))

    @app.delete("/cameras/byname/{name}", tags=["cameras"], status_code=204, response_class=Response,
                responses={404: {"model": Problem}})
    async def delete_camera(name: CamName, _token: Annotated[ApiToken, admin]) -> Response:
        """Remove a camera from the registry (its recorded footage stays)."""
        await state.registry.remove(name)
        return Response(status_code=204)

    # -- footage -----------------------------------------------------------------------------------------------
    TimeParam = Annotated[str | None, Query(max_length=100, description="Unix seconds, ISO 8601, `2h` (ago), "
                                                                        "`today 08:30`, `now`")]

    @app.get("/cameras/byname/{name}/footage", tags=["footage"], response_model=ChunksResponse,
             responses={404: {"model": Problem}})
    async def footage(name: CamName, _token: Annotated[ApiToken, read], start: TimeParam = None,
                      end: TimeParam = None,
                      limit: Annotated[int | None, Query(ge=1, le=100_000)] = None) -> JSONResponse:
        """Chunks (with presigned download URLs) and gaps overlapping start..end (default: the last hour)."""
        t0, t1 = _range(start, end, 3600)
        answer = await state.index().chunks(name, t0, t1, limit=limit)
        return JSONResponse(answer.model_dump(mode="json"))

    @app.post("/cameras/byname/{name}/clip", tags=["footage"], response_model=ClipMade,
              responses={404: {"model": Problem}})
    async def clip(name: CamName, _token: Annotated[ApiToken, read],
                   start: Annotated[str, Query(max_length=100, description="clip start (see /search for forms)")],
                   end: Annotated[str, Query(max_length=100, description="clip end")]) -> dict[str, Any]:
        """Export start..end as one MP4 (no re-encoding) into the bucket and answer its presigned URL. The clip
        starts at the keyframe at or before `start`; a stretch without footage stays a jump in time."""
        t0, t1 = _range(start, end, 0, state.api.max_clip_s)
        refs, gaps = await chunks_between(state.index(), name, t0, t1)
        if not refs:
            raise NotFoundError(f"camera {name} has no recorded footage in that range")
        key = clip_key(name, t0, t1)
        async with state.clip_slots:
            made, url, size = await asyncio.to_thread(_export, state, refs, t0, t1, key)
        return {"camera": name, "key": key, "url": url, "expires_in_s": state.api.clip_expiry_s,
                "start": made.start, "end": made.end, "frames": made.frames, "chunks": made.chunks, "bytes": size,
                "gaps": [g.model_dump(mode="json") for g in gaps]}

    @app.get("/cameras/byname/{name}/snapshot.jpg", tags=["footage"], response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}, "description": "the picture"},
                        404: {"model": Problem, "description": "unknown camera, or no recent keyframe"}})
    async def snapshot(name: CamName, _token: Annotated[ApiToken, read]) -> Response:
        """The camera's latest keyframe as a JPEG (keyframes are kept for a couple of minutes)."""
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

    @app.get("/search", tags=["footage"], response_model=SearchResponse)
    async def search(_token: Annotated[ApiToken, read],
                     camera: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
                     label: Annotated[str | None, Query(pattern=LABEL_PATTERN)] = None,
                     start: TimeParam = None, end: TimeParam = None,
                     min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
                     limit: Annotated[int | None, Query(ge=1, le=100_000)] = None) -> JSONResponse:
        """Incidents (detections of one label on one camera close in time) from start to end (default: the last
        24 hours), each with its chunks' and snapshot's presigned URLs."""
        t0, t1 = _range(start, end, 86_400)
        answer = await state.index().search(t0, t1, camera=camera, label=label_token(label) if label else None,
                                            min_score=min_score, limit=limit)
        return JSONResponse(answer.model_dump(mode="json"))

    # -- detections --------------------------------------------------------------------------------------------
    @app.get("/detections/stream", tags=["detections"], response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "`event: detection`, `data:` a Detection as JSON, one per event"}})
    async def detection_stream(request: Request, _token: Annotated[ApiToken, read],
                               camera: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
                               label: Annotated[str | None, Query(pattern=LABEL_PATTERN)] = None) -> StreamingResponse:
        """Live detections as server-sent events (`new EventSource(...)` in a browser), optionally of one camera
        and one label. Comment lines keep an idle stream open; it closes after `sse_max_s` and browsers
        reconnect."""
        subject = names.detections(camera or "*", label_token(label) if label else "*")
        queue: asyncio.Queue = asyncio.Queue(maxsize=state.api.sse_buffer)

        async def collect(msg: Any) -> None:
            if queue.full():
                queue.get_nowait()  # a slow client loses the oldest, never stalls the connection
            queue.put_nowait(msg.data)

        sub = await state.nc.subscribe(subject, cb=collect)
        return StreamingResponse(_events(state.api, queue, sub), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


# -- helpers -----------------------------------------------------------------------------------------------------

PATTERN_RULES = {
    NAME_PATTERN: f"invalid name: use {TOKEN_RULE}",
    LABEL_PATTERN: "invalid label: letters, digits, '_', '-' and spaces, starting with a letter or digit, at most 63",
    URL_PATTERN: "URL must start with rtsp://, rtsps://, rtmp://, http(s):// or file://",
}


def _status_of(exc: SpectareError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, CameraExists):
        return 409
    if isinstance(exc, QueryTimeout):
        return 504
    if isinstance(exc, UnreachableError):
        return 503
    if isinstance(exc, InvalidName | SchemaError):
        return 422
    if isinstance(exc, IndexQueryError):
        return 400
    return 400


def _field_error(error: dict[str, Any]) -> dict[str, Any]:
    """A validation error without the value it refused (it may hold a password)."""
    loc = ".".join(str(p) for p in error.get("loc", ()))
    if error.get("type") == "extra_forbidden":
        return {"loc": loc, "msg": f"unknown field {error['loc'][-1]!r}"}
    if error.get("type") == "string_pattern_mismatch":
        rule = PATTERN_RULES.get((error.get("ctx") or {}).get("pattern", ""))
        if rule:
            return {"loc": loc, "msg": rule}
    return {"loc": loc, "msg": redact(str(error.get("msg", "invalid")))}


def _range(start: str | None, end: str | None, default_span_s: float,
           max_span_s: float | None = None) -> tuple[float, float]:
    if default_span_s == 0 and (start is None or end is None):
        raise SpectareError("give both start and end")
    return time_range(start, end, time.time(), default_span_s, max_span_s)


async def _current(state: ApiState, name: str) -> CameraConfig | None:
    try:
        return await state.registry.get(name)
    except NotFoundError:
        return None


async def _count_keys(kv: KeyValue) -> int:
    try:
        return len(await kv.keys())
    except NoKeysError:
        return 0


async def refresh_scaling(state: ApiState, metrics: ApiMetrics) -> None:
    """Set the scaling gauges from the registry's size and the ingest workers announcing themselves."""
    cameras = await probes.bounded(_count_keys(state.registry.kv), state.api.stats_timeout_s, "camera count")
    if cameras is not None:
        _scaling_gauges(metrics, state, cameras)
    live = await probes.bounded(LeaseTable(state.leases, "ingest", "api").live_workers(), state.api.stats_timeout_s,
                                "ingest workers")
    if live is not None:
        metrics.workers_live.set(live)


def _scaling_gauges(metrics: ApiMetrics, state: ApiState, cameras: int) -> None:
    metrics.cameras.set(cameras)
    metrics.workers_needed.set(workers_needed(cameras, state.per_worker))


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


async def _events(api: ApiSettings, queue: asyncio.Queue, sub: Any) -> AsyncIterator[str]:
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
                detection = Detection.decode(data)
            except SchemaError:
                continue  # garbage on a detections subject is not the browser's problem
            yield f"event: detection\ndata: {json.dumps(detection.model_dump(mode='json'))}\n\n"
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _stats(state: ApiState) -> dict[str, Any]:
    api, settings, names = state.api, state.settings, state.settings.names
    timeout = api.stats_timeout_s
    now = time.time()
    hour_ago = now - 3600
    index = state.index(timeout)

    def bounded(work: Any, what: str) -> Any:
        return probes.bounded(work, timeout, what)

    (nats_ok, nats_detail), (s3_ok, s3_detail), index_status, cameras, ingest, segmenter, last, recent, lags = (
        await asyncio.gather(
            probes.nats_check(state.nc, state.js, settings, timeout),
            asyncio.to_thread(probes.s3_check, settings, timeout),
            bounded(index.status(), "indexer"),
            bounded(state.registry.list(), "camera registry"),
            bounded(LeaseTable(state.leases, "ingest", "api").snapshot(), "ingest leases"),
            bounded(LeaseTable(state.leases, "segmenter", "api").snapshot(), "segmenter leases"),
            bounded(probes.last_packets(state.js, names), "last packets"),
            bounded(probes.recent_packets(state.js, names, api.rate_window_s), "packet rates"),
            bounded(probes.consumer_lags(state.js, names), "consumer lag"),
        )
    )
    storage: dict[str, Any] = {"source": "unavailable", "footage_bytes": None, "footage_chunks": None,
                               "snapshots": None}
    recent_chunks: dict[str, int] | None = None
    if index_status is not None:
        found = await bounded(probes.chunks_from_index(index, hour_ago), "chunks from the indexer")
        if found is not None:
            recent_chunks, totals = found
            storage = {"source": "indexer", **totals}
    if recent_chunks is None:
        recent_chunks = await bounded(probes.chunks_from_stream(state.js, settings, hour_ago), "chunks from FOOTAGE")
    ingest_owners, ingest_live = ingest if ingest is not None else ({}, 0)
    segmenter_owners = segmenter[0] if segmenter is not None else {}
    per_camera = []
    for camera in cameras or []:
        last_at = (last or {}).get(camera.name)
        age = max(now - last_at, 0.0) if last_at is not None else None
        measured = rate((recent or {}).get(camera.name, []))
        owner = ingest_owners.get(camera.name)
        per_camera.append({
            "name": camera.name,
            "state": camera_state(owner is not None, age, api.stale_after_s),
            "ingest_worker": owner,
            "segmenter_worker": segmenter_owners.get(camera.name),
            "last_packet_age_s": None if age is None else round(age, 3),
            "fps": None if measured.fps is None else round(measured.fps, 2),
            "bitrate_bps": None if measured.bitrate_bps is None else round(measured.bitrate_bps),
            "chunks_last_hour": None if recent_chunks is None else recent_chunks.get(camera.name, 0),
        })
    recording = sum(c["state"] == "recording" for c in per_camera)
    total = len(per_camera)
    index_detail = "indexer answers" if index_status is not None else "no indexer answers"
    if index_status is not None:
        index_detail = f"indexer answers: {', '.join(f'{k} {v}' for k, v in sorted(index_status.tables.items()))}"
    return {
        "time": now,
        "health": {"nats": {"ok": nats_ok, "detail": nats_detail}, "s3": {"ok": s3_ok, "detail": s3_detail},
                   "indexer": {"ok": index_status is not None, "detail": index_detail}},
        "cameras": {"total": total, "recording": recording, "orphaned": total - recording},
        "per_camera": per_camera,
        "consumers": lags or [],
        "storage": storage,
        "scaling": {"cameras": total, "max_cameras_per_worker": state.per_worker,
                    "ingest_workers_needed": workers_needed(total, state.per_worker),
                    "ingest_workers_live": ingest_live},
    }
