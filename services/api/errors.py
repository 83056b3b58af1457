"""Error answers: `ApiError` (a status and one line, raised by routes and the token check), the responses the
OpenAPI document promises for errors (`PROBLEMS`), and the exception handlers `create_app` installs. Every error
is JSON `{"detail": "one line"}`; validation errors add `errors` without the values they refused."""

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from spectare.core.errors import CameraExists, InvalidName, NotFoundError, SchemaError, SpectareError, UnreachableError
from spectare.core.indexclient import QueryTimeout
from spectare.core.redact import redact
from spectare.schemas.names import TOKEN_RULE

from .models import LABEL_PATTERN, NAME_PATTERN, URL_PATTERN, Problem

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answer: HTTP status and one line."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


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

PATTERN_RULES = {
    NAME_PATTERN: f"invalid name: use {TOKEN_RULE}",
    LABEL_PATTERN: "invalid label: letters, digits, '_', '-' and spaces, starting with a letter or digit, at most 63",
    URL_PATTERN: "URL must start with rtsp://, rtsps://, rtmp://, http(s):// or file://",
}


# -- handlers (installed by create_app) -------------------------------------------------------------------------

async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse({"detail": redact(exc.detail)}, exc.status, headers=exc.headers)


async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_field_error(e) for e in exc.errors()]
    detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:5]) or "invalid request"
    return JSONResponse({"detail": redact(detail), "errors": errors}, 422)


async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"detail": str(exc.detail)}, exc.status_code, headers=exc.headers)


async def spectare_error(_request: Request, exc: SpectareError) -> JSONResponse:
    return JSONResponse({"detail": redact(str(exc))}, status_of(exc))


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed: %s", request.method, request.url.path, redact(repr(exc)), exc_info=exc)
    return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the API's log says more"}, 500)


def status_of(exc: SpectareError) -> int:
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
    return 400  # IndexQueryError (the indexer refused the request) and any other refusal


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
