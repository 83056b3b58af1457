"""Who may call what. Two ways in, checked on every request with no cache (so a revoked token, or an ended
session, fails on its next request):

- a bearer token (`spectare.core.tokens`): `Authorization: Bearer spt_...`, one KV get;
- the session cookie `spectare_session` that `POST /auth/login` sets (`spectare.core.sessions`), for browsers,
  which send no Authorization header from `<video>`, `<img>`, `EventSource` or a WebSocket: two KV gets (the
  session, then its token). It has the scope of the token it was made with.

A route states the scope it needs with a parameter, `_token: Read` or `_token: Admin` (the `ApiToken` it was
called with, for routes that show it); either way in passes. A WebSocket route calls `authorize_websocket`.

The cookie is an ambient credential: the browser attaches it to requests other sites make. SameSite=Strict
keeps it off cross-site requests in today's browsers, and as well a change (POST, PUT, PATCH, DELETE) or a
WebSocket made with the cookie must carry an `Origin` equal to this API's own origin (the request's
scheme://host[:port], or `[api] public_origin`), else 403 (a WebSocket: closed with 1008). A bearer token is
never ambient, so bearer requests need no Origin."""

import asyncio
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import Depends, Request, WebSocket
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import HTTPConnection

from spectare.core.sessions import SessionRefused
from spectare.core.tokens import allows
from spectare.schemas import ApiToken

from .errors import ApiError
from .state import ApiState, State

SESSION_COOKIE = "spectare_session"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CROSS_ORIGIN = ("cross-origin request with the session cookie: a change (or a WebSocket) made with it must send "
                "an Origin header equal to this API's own origin")
CHALLENGE = {"WWW-Authenticate": "Bearer"}
WS_POLICY_VIOLATION, WS_TRY_AGAIN_LATER = 1008, 1013

bearer = HTTPBearer(auto_error=False, description="an API token (`spectare token create`)")
session_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, scheme_name="SessionCookie",
                              description="the browser session `POST /auth/login` sets (HttpOnly, SameSite=Strict); "
                                          "changes made with it need a same-origin `Origin` header")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
SessionCookie = Annotated[str | None, Depends(session_cookie)]
T = TypeVar("T")


def origin_of(url: str | None) -> str | None:
    """`scheme://host[:port]` of an http(s) URL or Origin header, lower-cased and without a default port; None
    for anything else (`null`, another scheme, no host, a bad port)."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in ("http", "https") or not host:
        return None
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if port in (None, 80 if scheme == "http" else 443) else f"{scheme}://{host}:{port}"


def own_origin(connection: HTTPConnection) -> str | None:
    """The origin a request (or WebSocket) was made to: its scheme (ws -> http, wss -> https) and Host."""
    scheme = {"ws": "http", "wss": "https"}.get(connection.url.scheme, connection.url.scheme)
    return origin_of(f"{scheme}://{connection.url.netloc}")


def same_origin(origin: str | None, own: str | None, public_origin: str | None) -> bool:
    """Whether an Origin header names this API: the request's own origin or the configured public one."""
    given = origin_of(origin)
    return given is not None and given in {origin_of(own), origin_of(public_origin)} - {None}


def secure_cookies(connection: HTTPConnection, state: ApiState) -> bool:
    """Whether the session cookie is marked Secure: the request came over https (uvicorn honours
    X-Forwarded-Proto from trusted proxies), or the settings say the browser reaches us over TLS."""
    return (connection.url.scheme in ("https", "wss") or state.api.cookie_secure
            or (state.api.public_origin or "").startswith("https://"))


async def answered(work: Awaitable[T], what: str) -> T:
    """`work` (a KV lookup) within 5 s; 503 naming `what` when NATS does not answer."""
    try:
        return await asyncio.wait_for(work, 5.0)
    except SessionRefused:
        raise
    except Exception as exc:  # NATS away: say so rather than calling the credential bad
        raise ApiError(503, f"cannot check {what}: NATS does not answer ({type(exc).__name__})") from None


async def caller(state: ApiState, connection: HTTPConnection, token: str | None, cookie: str | None, scope: str,
                 origin_required: bool) -> ApiToken:
    """The ApiToken a request acts for, by its bearer token (which wins when both are sent) or its session cookie
    (checking Origin first when `origin_required`), allowed `scope`; ApiError 401, 403 or 503 otherwise."""
    record: ApiToken | None
    if token is not None:
        record = await answered(state.tokens.verify(token), "the token")
    elif cookie is not None:
        if origin_required and not same_origin(connection.headers.get("origin"), own_origin(connection),
                                               state.api.public_origin):
            raise ApiError(403, CROSS_ORIGIN)
        try:
            _session, record = await answered(state.sessions.verify(cookie), "the session")
        except SessionRefused as exc:
            raise ApiError(401, str(exc), CHALLENGE) from None
    else:
        raise ApiError(401, "missing API token: send 'Authorization: Bearer <token>' (create one with "
                            "`spectare token create --scope read`), or log in: POST /auth/login", CHALLENGE)
    if record is None:
        raise ApiError(401, "unknown or revoked API token", CHALLENGE)
    if not allows(record.scope, scope):
        raise ApiError(403, f"this needs an {scope} token; token {record.id} has scope {record.scope}")
    return record


def require(scope: str) -> Any:
    """A dependency answering the caller's ApiToken (by bearer token or session cookie) when it allows `scope`;
    401, 403 or 503 otherwise."""

    async def check(request: Request, credentials: Credentials, cookie: SessionCookie, state: State) -> ApiToken:
        token = credentials.credentials if credentials is not None else None
        return await caller(state, request, token, cookie, scope, origin_required=request.method in STATE_CHANGING)

    return Depends(check)


async def authorize_websocket(websocket: WebSocket, scope: str = "read") -> ApiToken | None:
    """The ApiToken a WebSocket acts for (bearer header, or the session cookie with a same-origin `Origin`: a
    browser always sends one, and another site's page must not ride on the cookie), allowed `scope`. Call it
    before `accept`. On failure it accepts and closes the socket with 1008 (1013 when NATS does not answer) and a
    short reason, and answers None; accepting first is what lets a browser see the code and reason (a refused
    handshake reaches it as a bare 1006)."""
    state: ApiState = websocket.app.state.api
    kind, credential = get_authorization_scheme_param(websocket.headers.get("authorization"))
    token = credential if kind.lower() == "bearer" and credential else None
    try:
        return await caller(state, websocket, token, websocket.cookies.get(SESSION_COOKIE), scope,
                            origin_required=True)
    except ApiError as exc:
        await websocket.accept()
        await websocket.close(WS_TRY_AGAIN_LATER if exc.status == 503 else WS_POLICY_VIOLATION,
                              close_reason(exc.detail))
        return None


def close_reason(detail: str) -> str:
    """A WebSocket close reason from an error line: its part before the first ':', in the 123 bytes allowed."""
    return detail.split(":", 1)[0].encode()[:123].decode(errors="ignore")


Read = Annotated[ApiToken, require("read")]
Admin = Annotated[ApiToken, require("admin")]
