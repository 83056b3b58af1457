"""Browser sessions: logging in with an API token (`spectare.core.tokens`) makes a session whose cookie is
`sps_<id>_<secret>`, kept as `ApiSession` (its token, scope, expiry and a SHA-256 of the whole cookie) in the KV
bucket `sessions` under `<id>`. A browser cannot send an Authorization header from `<video>`, `<img>` or
`EventSource`; it sends this cookie by itself.

Checking a session is two KV gets (the session, then its token) and one constant-time comparison: revoking the
token ends every session made with it at once, and an ended or expired session fails on its next request. The
bucket's own TTL (`SESSION_MAX_TTL_S`, the longest session allowed) forgets old sessions; each one's expiry is
its own `expires_at`.

Login codes (`spl_<id>_<secret>`, what `spectare up` prints in its login link) live in the same bucket under
`code.<id>`, each an `ApiSession` record of the session it will begin (its token, scope, a SHA-256 of the whole
code, an expiry 10 minutes on), so a code is worth no more than the token it stands for and nothing stored rebuilds
it. A code is used once: redeeming it deletes the record on the revision it was read at, so of two browsers
redeeming the same code at once exactly one wins (the other's delete fails on the revision), and a used code is
gone. Cookie ids are 16 hex digits, so no cookie looks up a code's key.
"""

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, KeyNotFoundError
from nats.js.kv import KeyValue

from spectare.core.bus import SESSION_MAX_TTL_S, open_bucket
from spectare.core.config import Settings
from spectare.core.errors import SchemaError, SpectareError
from spectare.core.tokens import TokenStore
from spectare.schemas import ApiSession, ApiToken

_COOKIE = re.compile(r"sps_([a-f0-9]{16})_([A-Za-z0-9_-]{32,64})")
_LOGIN_CODE = re.compile(r"spl_([a-f0-9]{16})_([A-Za-z0-9_-]{32,64})")
LOGIN_CODE_TTL_S = 600.0
USED_CODE = "unknown, used or expired login code: log in with a token (the `api-token` file of `spectare up`)"


class SessionRefused(SpectareError):
    """A cookie that does not stand for a live session; the message says which case, for a 401."""


def new_session_cookie() -> tuple[str, str]:
    """(session id, the whole cookie value) of a fresh random session: 16 hex id, 256 random bits of secret."""
    session_id = secrets.token_hex(8)
    return session_id, f"sps_{session_id}_{secrets.token_urlsafe(32)}"


def cookie_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def session_id_of(value: str) -> str | None:
    """The id of a well-formed cookie value, None for anything else."""
    match = _COOKIE.fullmatch(value)
    return match[1] if match else None


def new_login_code() -> tuple[str, str]:
    """(code id, the whole code) of a fresh random login code: 16 hex id, 256 random bits of secret."""
    code_id = secrets.token_hex(8)
    return code_id, f"spl_{code_id}_{secrets.token_urlsafe(32)}"


def login_code_key(code: str) -> str | None:
    """The KV key of a well-formed login code, None for anything else."""
    match = _LOGIN_CODE.fullmatch(code)
    return f"code.{match[1]}" if match else None


@dataclass(frozen=True)
class CreatedSession:
    record: ApiSession
    cookie: str  # sent once, in Set-Cookie


class SessionStore:
    def __init__(self, kv: KeyValue, tokens: TokenStore) -> None:
        self.kv = kv
        self.tokens = tokens

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings, tokens: TokenStore) -> "SessionStore":
        return cls(await open_bucket(js, settings, settings.names.sessions_bucket), tokens)

    async def create(self, token: ApiToken, ttl_s: float) -> CreatedSession:
        """A session acting for `token` for `ttl_s` seconds (at most SESSION_MAX_TTL_S)."""
        if not 0 < ttl_s <= SESSION_MAX_TTL_S:
            raise SpectareError(f"a session lasts more than 0 and at most {SESSION_MAX_TTL_S} s, not {ttl_s}")
        session_id, cookie = new_session_cookie()
        now = time.time()
        record = ApiSession.create(id=session_id, token_id=token.id, scope=token.scope, sha256=cookie_hash(cookie),
                                   created_at=now, expires_at=now + ttl_s)
        await self.kv.create(session_id, record.encode())
        return CreatedSession(record, cookie)

    async def create_login_code(self, token: ApiToken, ttl_s: float = LOGIN_CODE_TTL_S) -> str:
        """A single-use code that logs a browser in as `token` within `ttl_s` seconds (shown once, by the caller)."""
        if not 0 < ttl_s <= SESSION_MAX_TTL_S:
            raise SpectareError(f"a login code lasts more than 0 and at most {SESSION_MAX_TTL_S} s, not {ttl_s}")
        code_id, code = new_login_code()
        now = time.time()
        record = ApiSession.create(id=code_id, token_id=token.id, scope=token.scope, sha256=cookie_hash(code),
                                   created_at=now, expires_at=now + ttl_s)
        await self.kv.create(f"code.{code_id}", record.encode())
        return code

    async def redeem_login_code(self, code: str) -> ApiToken:
        """The token a login code stands for, the code used up; SessionRefused when it is unknown, used (now or
        by a concurrent redeemer), expired, or its token was revoked."""
        key = login_code_key(code)
        if key is None:
            raise SessionRefused(USED_CODE)
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            raise SessionRefused(USED_CODE) from None
        try:
            record = ApiSession.decode(entry.value or b"")
        except SchemaError:
            raise SessionRefused(USED_CODE) from None
        if not hmac.compare_digest(record.sha256, cookie_hash(code)):
            raise SessionRefused(USED_CODE)
        try:
            await self.kv.delete(key, last=entry.revision)
        except BadRequestError:  # wrong last sequence: someone redeemed it since we read it
            raise SessionRefused(USED_CODE) from None
        if time.time() >= record.expires_at:
            raise SessionRefused(USED_CODE)
        token = await self.tokens.get(record.token_id)
        if token is None:
            raise SessionRefused(f"token {record.token_id} of this login code was revoked: log in with another token")
        return token

    async def verify(self, cookie: str) -> tuple[ApiSession, ApiToken]:
        """The live session a cookie stands for and the token it acts for; SessionRefused saying why otherwise."""
        record = await self._get(cookie)
        if record is None:
            raise SessionRefused("unknown or ended session: log in again (POST /auth/login)")
        if time.time() >= record.expires_at:
            raise SessionRefused("the session has expired: log in again (POST /auth/login)")
        token = await self.tokens.get(record.token_id)
        if token is None:
            raise SessionRefused(f"token {record.token_id} of this session was revoked: log in with another token")
        return record, token

    async def end(self, cookie: str) -> ApiSession | None:
        """End the session a cookie stands for; None when there is none (already ended, or never was)."""
        record = await self._get(cookie)
        if record is not None:
            await self.kv.purge(record.id)
        return record

    async def _get(self, cookie: str) -> ApiSession | None:
        """The stored session matching a cookie (constant-time comparison of its hash), else None."""
        session_id = session_id_of(cookie)
        if session_id is None:
            return None
        try:
            entry = await self.kv.get(session_id)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        try:
            record = ApiSession.decode(entry.value)
        except SchemaError:
            return None
        return record if hmac.compare_digest(record.sha256, cookie_hash(cookie)) else None
