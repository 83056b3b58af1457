"""API tokens: `spt_<id>_<secret>`, kept as `ApiToken` (scope and a SHA-256 of the whole token) in the KV bucket
`tokens` under `<id>`, so checking a token is one KV get and one constant-time comparison, and nothing stored
lets anyone rebuild a token. The token itself is shown once, by whoever creates it.

Scopes: `read` may call every GET endpoint (and export clips); `admin` may also change cameras.
"""

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from spectare.core.bus import bucket_keys, open_bucket
from spectare.core.config import Settings
from spectare.core.errors import NotFoundError, SchemaError, SpectareError
from spectare.schemas import ApiToken

SCOPES = ("read", "admin")
_TOKEN = re.compile(r"spt_([a-f0-9]{12})_([A-Za-z0-9_-]{32,64})")
_ID = re.compile(r"[a-f0-9]{12}")


class TokenNotFound(NotFoundError):
    """No token with that id."""


def new_token() -> tuple[str, str]:
    """(token id, the whole token) of a fresh random token: 12 hex id, 256 random bits of secret."""
    token_id = secrets.token_hex(6)
    return token_id, f"spt_{token_id}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_id_of(token: str) -> str | None:
    """The id of a well-formed token, None for anything else."""
    match = _TOKEN.fullmatch(token)
    return match[1] if match else None


def matches(record: ApiToken, token: str) -> bool:
    return hmac.compare_digest(record.sha256, token_hash(token))


def allows(scope: str, needed: str) -> bool:
    """Whether a token of `scope` may do what needs `needed` (admin may do everything read may)."""
    return scope == "admin" or scope == needed


@dataclass(frozen=True)
class CreatedToken:
    record: ApiToken
    token: str  # shown once


class TokenStore:
    def __init__(self, kv: KeyValue, js: JetStreamContext, bucket: str) -> None:
        self.kv = kv
        self.js = js
        self.bucket = bucket

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings) -> "TokenStore":
        bucket = settings.names.tokens_bucket
        return cls(await open_bucket(js, settings, bucket), js, bucket)

    async def create(self, scope: str, name: str = "") -> CreatedToken:
        if scope not in SCOPES:
            raise SpectareError(f"unknown scope {scope!r}: use {' or '.join(SCOPES)}")
        token_id, token = new_token()
        record = ApiToken.create(id=token_id, name=name, scope=scope, sha256=token_hash(token), created_at=time.time())
        await self.kv.create(token_id, record.encode())
        return CreatedToken(record, token)

    async def list(self) -> list[ApiToken]:
        records = []
        for key in await bucket_keys(self.js, self.bucket):
            record = await self.get(key)
            if record is not None:
                records.append(record)
        return sorted(records, key=lambda r: r.created_at)

    async def revoke(self, token_id: str) -> ApiToken:
        if not _ID.fullmatch(token_id):
            raise TokenNotFound(f"{token_id!r} is not a token id (12 hex digits; `spectare token list` shows them)")
        record = await self.get(token_id)
        if record is None:
            raise TokenNotFound(f"no token with id {token_id}; `spectare token list` shows them")
        await self.kv.purge(token_id)
        return record

    async def verify(self, token: str) -> ApiToken | None:
        """The token's record if the token is known and matches, else None."""
        token_id = token_id_of(token)
        if token_id is None:
            return None
        record = await self.get(token_id)
        return record if record is not None and matches(record, token) else None

    async def get(self, token_id: str) -> ApiToken | None:
        """The stored record of a token id, None when there is none (never made, or revoked)."""
        try:
            entry = await self.kv.get(token_id)
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        try:
            return ApiToken.decode(entry.value)
        except SchemaError:
            return None
