"""Who may call what: bearer tokens (`spectare.core.tokens`) checked on every request, one KV get each (no cache,
so a revoked token fails on its next request). A route states the scope it needs with a parameter,
`_token: Read` or `_token: Admin` (the `ApiToken` it was called with, for routes that show it).

The place for other ways in (a cookie set by a login route, a token on a WebSocket, which sends no
Authorization header from a browser): `require` here, and their routes in a router of their own."""

import asyncio
from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from spectare.core.tokens import allows
from spectare.schemas import ApiToken

from .errors import ApiError
from .state import State

bearer = HTTPBearer(auto_error=False, description="an API token (`spectare token create`)")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def require(scope: str) -> Any:
    """A dependency answering the caller's ApiToken when it allows `scope`; 401, 403 or 503 otherwise."""

    async def check(credentials: Credentials, state: State) -> ApiToken:
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


Read = Annotated[ApiToken, require("read")]
Admin = Annotated[ApiToken, require("admin")]
