"""The Python client of the indexer's query service (`index.<endpoint>` over NATS request-reply): the CLI, the
API and any tool use it. It lives in the core, not in the indexer service, so that a caller imports no service;
the server side (`spectare.indexer.api`) answers with the same `spectare.schemas.queries` messages.

    async with connected(settings, "tool") as nc:
        found = await IndexClient(nc, settings).search(start=time.time() - 3600, end=time.time(), label="person")

Errors are SpectareErrors carrying the indexer's one-line message: CameraNotFound, QueryTimeout, IndexQueryError
(bad request, refused SQL, too large, indexer failure); IndexUnavailable when no indexer answers.
"""

import asyncio
from typing import TypeVar

import nats.errors
from nats.aio.client import Client as NATS
from nats.micro.request import ERROR_CODE_HEADER, ERROR_HEADER

from spectare.core.config import Settings
from spectare.core.errors import CameraNotFound, SchemaError, SpectareError, UnreachableError
from spectare.schemas import Message
from spectare.schemas.queries import (
    ChunksRequest,
    ChunksResponse,
    ErrorCode,
    EventSearchRequest,
    EventSearchResponse,
    ExportRequest,
    ExportResponse,
    FootageAtRequest,
    FootageAtResponse,
    RetentionRequest,
    RetentionResponse,
    SearchRequest,
    SearchResponse,
    SqlRequest,
    SqlResponse,
    StatusRequest,
    StatusResponse,
)

DEFAULT_TIMEOUT_S = 30.0
R = TypeVar("R", bound=Message)


class IndexUnavailable(UnreachableError):
    """No indexer answered."""


class IndexQueryError(SpectareError):
    """The indexer refused or failed a query; the message is its own."""


class QueryTimeout(IndexQueryError):
    """The query ran past the indexer's time limit."""


class IndexClient:
    def __init__(self, nc: NATS, settings: Settings, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.nc = nc
        self.names = settings.names
        self.timeout_s = timeout_s

    async def search(self, start: float, end: float, camera: str | None = None, label: str | None = None,
                     min_score: float | None = None, limit: int | None = None) -> SearchResponse:
        request = SearchRequest.create(start=start, end=end, camera=camera, label=label, min_score=min_score,
                                       limit=limit)
        return await self._ask("search", request, SearchResponse)

    async def events(self, start: float, end: float, camera: str | None = None, label: str | None = None,
                     zone: str | None = None, min_score: float | None = None, limit: int | None = None,
                     incidents: bool = False) -> EventSearchResponse:
        """Tracked objects of the range; with `incidents`, also the incidents where the index has no events."""
        request = EventSearchRequest.create(start=start, end=end, camera=camera, label=label, zone=zone,
                                            min_score=min_score, limit=limit, incidents=incidents)
        return await self._ask("events", request, EventSearchResponse)

    async def footage_at(self, camera: str, time: float) -> FootageAtResponse:
        return await self._ask("footage_at", FootageAtRequest.create(camera=camera, time=time), FootageAtResponse)

    async def chunks(self, camera: str, start: float, end: float, limit: int | None = None) -> ChunksResponse:
        request = ChunksRequest.create(camera=camera, start=start, end=end, limit=limit)
        return await self._ask("chunks", request, ChunksResponse)

    async def sql(self, sql: str, max_rows: int | None = None) -> SqlResponse:
        return await self._ask("sql", SqlRequest.create(sql=sql, max_rows=max_rows), SqlResponse)

    async def retention(self, dry_run: bool = False) -> RetentionResponse:
        return await self._ask("retention", RetentionRequest.create(dry_run=dry_run), RetentionResponse)

    async def export(self) -> ExportResponse:
        return await self._ask("export", ExportRequest.create(), ExportResponse)

    async def status(self) -> StatusResponse:
        return await self._ask("status", StatusRequest.create(), StatusResponse)

    async def _ask(self, endpoint: str, request: Message, answer: type[R]) -> R:
        subject = self.names.index(endpoint)
        try:
            reply = await self.nc.request(subject, request.encode(), timeout=self.timeout_s)
        except nats.errors.NoRespondersError:
            raise IndexUnavailable(f"no indexer is running (nothing answers on {subject}): start one with "
                                   "`spectare up`, or `python -m spectare.indexer` beside your NATS") from None
        except (TimeoutError, nats.errors.TimeoutError):
            raise IndexUnavailable(f"the indexer did not answer on {subject} within {self.timeout_s:g} s") from None
        headers = reply.headers or {}
        if ERROR_CODE_HEADER in headers:
            raise _error(headers.get(ERROR_CODE_HEADER, ""), headers.get(ERROR_HEADER, "") or "unknown error")
        try:
            return answer.decode(reply.data)
        except SchemaError as exc:
            raise IndexQueryError(f"the indexer's answer on {subject} is unreadable: {exc}") from None


def _error(code: str, message: str) -> SpectareError:
    if code == ErrorCode.NOT_FOUND:
        return CameraNotFound(message)
    if code == ErrorCode.TIMEOUT:
        return QueryTimeout(message)
    return IndexQueryError(message)


async def wait_for_indexer(nc: NATS, settings: Settings, timeout_s: float) -> StatusResponse:
    """The indexer's status once it answers (for scripts and tests that start one)."""
    client = IndexClient(nc, settings, timeout_s=min(timeout_s, 5.0))
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            return await client.status()
        except IndexUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
