"""The FastAPI application, assembled: middleware, error handlers and one router per tag. Stateless: everything
it knows is in NATS (registry, tokens, leases, streams), S3 and the indexer, so any number of replicas answer
alike. Routes live in their routers (`system`, `cameras`, `footage`, `search`, `detections`) and reach the
ApiState and the metrics through dependencies (`state.py`), tokens through `auth.py`; a new router (HLS and
live video, a login) is a module with an `APIRouter` and one `include_router` line here."""

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from spectare import __version__
from spectare.core.errors import SpectareError

from . import cameras, detections, errors, events, footage, live, login, media, search, system, webui
from .errors import PROBLEMS, ApiError
from .middleware import ApiMetrics, BodyLimit, MetricsMiddleware
from .state import ApiState
from .stills import StillCache
from .system import refresh_scaling

__all__ = ["ApiState", "create_app", "refresh_scaling"]

TAGS = [
    {"name": "cameras", "description": "the camera registry (URL passwords are stored, never returned)"},
    {"name": "footage", "description": "recorded chunks, clips, snapshots, searches"},
    {"name": "detections", "description": "live detections as server-sent events"},
    {"name": "events", "description": "tracked-object events (new, update, end) as server-sent events"},
    {"name": "system", "description": "health, statistics, metrics"},
    {"name": "auth", "description": "browser login: a session cookie in place of the bearer header"},
    {"name": "media", "description": "video for players: recorded footage as HLS (playlists for a range, their "
                                     "segments, windows) and live fMP4 over a WebSocket"},
]
DESCRIPTION = """Spectare's control plane. Every endpoint but `/healthz` and `/auth` needs a token:
`Authorization: Bearer <token>` (`spectare token create --scope read|admin`). `read` tokens may call every
GET endpoint and export clips; changing cameras needs `admin`. Errors are JSON `{"detail": "one line"}`.
Times are Unix seconds or what `spectare` commands take (`2h`, `today 08:30`, ISO 8601).

Browsers (which send no Authorization header from `<video>`, `<img>`, `EventSource` or a WebSocket) log in
instead: `POST /auth/login` with `{"token": "spt_..."}` sets an HttpOnly, SameSite=Strict session cookie that
every endpoint takes in place of the header, with the token's scope. A change (POST, PUT, PATCH, DELETE) made
with the cookie must send an `Origin` header equal to the API's own origin."""


def create_app(state: ApiState) -> FastAPI:
    """The app over an open ApiState (the caller owns the NATS connection)."""
    metrics = ApiMetrics()
    metrics.per_worker.set(state.per_worker)
    app = FastAPI(title="Spectare", version=__version__, description=DESCRIPTION, openapi_tags=TAGS,
                  responses=PROBLEMS)
    app.state.api = state  # state.get_state: every route's ApiState, and the token check's (auth.require)
    app.state.metrics = metrics  # state.get_metrics
    app.add_middleware(BodyLimit, max_bytes=state.api.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # added last: outermost, so it sees 413s too

    app.exception_handler(ApiError)(errors.api_error)
    app.exception_handler(RequestValidationError)(errors.invalid_request)
    app.exception_handler(StarletteHTTPException)(errors.http_error)
    app.exception_handler(SpectareError)(errors.spectare_error)
    app.exception_handler(Exception)(errors.internal_error)

    # In this order, the order of the OpenAPI document's paths. Every route but /healthz and /auth states its scope.
    for module in (system, cameras, footage, search, detections, events):
        app.include_router(module.router)
    app.include_router(login.router)
    app.include_router(media.router)
    app.include_router(live.router)
    # The web UI last: `/` and `/assets/*`, and the page for browser navigations that no route above answers.
    app.include_router(webui.router)
    app.router.default = webui.PageFallback(app.router.default)
    app.state.stills = StillCache(state.api.snapshot_cache_cameras, metrics.registry)  # snapshot.jpg, per keyframe
    return app
