"""Routes tagged `auth`: browser login. `POST /auth/login` takes an API token in the JSON body (never in the URL),
or a single-use login code (the `#code=` of the link `spectare up` prints: a URL fragment, which browsers never
send to a server, so no log holds it), and sets the session cookie every endpoint accepts in place of the bearer
header (`auth.py`); `POST /auth/logout` ends the session and clears the cookie."""

import logging
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from spectare.core.sessions import SessionRefused
from spectare.schemas import ApiToken

from .auth import CROSS_ORIGIN, SESSION_COOKIE, SessionCookie, answered, own_origin, same_origin, secure_cookies
from .errors import ApiError
from .state import ApiState, State

log = logging.getLogger(__name__)
router = APIRouter(prefix="/auth", tags=["auth"])


class Login(BaseModel):
    """Either an API token or a login code."""

    model_config = ConfigDict(extra="forbid", strict=True)
    token: str | None = Field(default=None, min_length=1, max_length=200,
                              description="an API token, `spt_...` (`spectare token create`)")
    code: str | None = Field(default=None, min_length=1, max_length=200,
                             description="a single-use login code, `spl_...` (the `#code=` of the link `spectare up` "
                                         "prints; valid 10 minutes)")

    @model_validator(mode="after")
    def _one_credential(self) -> "Login":
        if (self.token is None) == (self.code is None):
            raise ValueError("send either token or code")
        return self


class Session(BaseModel):
    """Who the session acts for, and until when."""

    token_id: str = Field(description="the API token logged in with")
    name: str = Field(description="that token's name")
    scope: Literal["read", "admin"] = Field(description="that token's scope, which the session has")
    expires_at: float = Field(description="Unix seconds when the session ends (unless the token is revoked first)")


def _check_origin(request: Request, state: ApiState) -> None:
    if not same_origin(request.headers.get("origin"), own_origin(request), state.api.public_origin):
        raise ApiError(403, CROSS_ORIGIN)


@router.post("/login", response_model=Session)
async def login(body: Login, request: Request, response: Response, state: State) -> Session:
    """Log in with an API token, or a login code (used up by this): sets the HttpOnly, SameSite=Strict session
    cookie (`[api] session_ttl_s`, 12 h by default), which then works wherever the token would. A page of another
    origin may not log in (its `Origin` is refused: login CSRF)."""
    if "origin" in request.headers:
        _check_origin(request, state)
    token = await _token_of(body, state)
    made = await answered(state.sessions.create(token, state.api.session_ttl_s), "the session")
    response.set_cookie(SESSION_COOKIE, made.cookie, max_age=int(state.api.session_ttl_s), path="/",
                        secure=secure_cookies(request, state), httponly=True, samesite="strict")
    log.info("browser session for %s token %s%s until %s", token.scope, token.id,
             " (login code)" if body.code is not None else "",
             datetime.fromtimestamp(made.record.expires_at, UTC).isoformat(timespec="seconds"))
    return Session(token_id=token.id, name=token.name, scope=token.scope, expires_at=made.record.expires_at)


async def _token_of(body: Login, state: ApiState) -> ApiToken:
    """The token a login acts for: the one sent, or the one its login code stands for (the code used up)."""
    if body.code is not None:
        try:
            return await answered(state.sessions.redeem_login_code(body.code), "the login code")
        except SessionRefused as exc:
            raise ApiError(401, str(exc)) from None
    token = await answered(state.tokens.verify(body.token or ""), "the token")
    if token is None:
        raise ApiError(401, "unknown or revoked API token")
    return token


@router.post("/logout", status_code=204, response_class=Response)
async def logout(request: Request, cookie: SessionCookie, state: State) -> Response:
    """End the session of the cookie sent (like every change made with the cookie, from this API's own origin)
    and clear the cookie; 204 as well when there was none."""
    if cookie is not None:
        _check_origin(request, state)
        ended = await answered(state.sessions.end(cookie), "the session")
        if ended is not None:
            log.info("browser session for token %s ended by logout", ended.token_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=secure_cookies(request, state), httponly=True,
                           samesite="strict")
    return response
