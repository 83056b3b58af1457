"""The query service: NATS request/reply (a NATS micro service, so `$SRV.PING/INFO/STATS` find it), in the
indexer's process because DuckDB lets only the process that writes the file read it.

Every request runs in its own task, on a fresh DuckDB cursor in the query thread pool (at most
`max_concurrent_queries` at once); a query past `query_timeout_s` is interrupted on its cursor. Answers and
errors follow `spectare.schemas.queries`: problems a user can fix are error replies with one line (bad
request, unknown camera, refused SQL, timeout, too large), never a crash of the indexer.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
from nats.aio.client import Client as NATS
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import Service

from spectare import __version__
from spectare.core.errors import CameraNotFound, SchemaError, SpectareError
from spectare.core.retry import describe_error
from spectare.schemas import Message, Names
from spectare.schemas.queries import (
    ChunksRequest,
    ErrorCode,
    EventSearchRequest,
    FootageAtRequest,
    SearchRequest,
    SqlRequest,
    StatusRequest,
)

from .queries import Reader
from .settings import IndexerSettings
from .sqlguard import QueryFailed, QueryRefused, run_readonly

log = logging.getLogger(__name__)

ENDPOINTS = ("search", "events", "footage_at", "chunks", "sql", "status")


class QueryError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class QueryService:
    def __init__(self, nc: NATS, names: Names, ix: IndexerSettings, con: duckdb.DuckDBPyConnection, reader: Reader,
                 database: str) -> None:
        self.nc = nc
        self.names = names
        self.ix = ix
        self.con = con
        self.reader = reader
        self.database = database
        self.pool = ThreadPoolExecutor(ix.max_concurrent_queries, thread_name_prefix="index-query")
        self.slots = asyncio.Semaphore(ix.max_concurrent_queries)
        self.tasks: set[asyncio.Task] = set()
        self.service: Service | None = None
        self.errors = 0

    async def start(self) -> None:
        self.service = await add_service(self.nc, name=self.names.index_service, version=_semver(__version__),
                                         description="Spectare index: search, events, footage, chunks, read-only SQL")
        handlers: dict[str, tuple[type[Message], Callable[[duckdb.DuckDBPyConnection, Any], Message]]] = {
            "search": (SearchRequest, self.reader.search),
            "events": (EventSearchRequest, self.reader.events),
            "footage_at": (FootageAtRequest, self.reader.footage_at),
            "chunks": (ChunksRequest, self.reader.chunks),
            "sql": (SqlRequest, self._sql),
            "status": (StatusRequest, lambda cur, _: self.reader.status(cur, self.database)),
        }
        for name, (request_type, run) in handlers.items():
            await self.service.add_endpoint(name=name, subject=self.names.index(name),
                                            handler=self._handler(request_type, run))
        log.info("query service %s up on %s", self.names.index_service,
                 ", ".join(self.names.index(name) for name in handlers))

    async def add_job(self, name: str, request_type: type[Message], job: Callable[[Any], Awaitable[Message]]) -> None:
        """An endpoint for a long writing job (retention, export): it runs in the writer's turn, not on a query
        cursor, and has no query time limit."""
        assert self.service is not None

        async def run(request: Request) -> None:
            try:
                try:
                    query = request_type.decode(request.data)
                except SchemaError as exc:
                    raise QueryError(ErrorCode.BAD_REQUEST, f"bad request: {exc}") from None
                await request.respond((await job(query)).encode())
            except QueryError as exc:
                await _respond_error(request, exc.code, str(exc))
            except Exception as exc:  # S3 or NATS away, a bug: answer, log, keep serving
                self.errors += 1
                log.warning("%s failed: %s", name, describe_error(exc))
                await _respond_error(request, ErrorCode.INTERNAL, f"{name} failed: {describe_error(exc)}")

        async def handle(request: Request) -> None:
            task = asyncio.create_task(run(request))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        await self.service.add_endpoint(name=name, subject=self.names.index(name), handler=handle)

    async def stop(self) -> None:
        if self.service is not None:
            with contextlib.suppress(Exception):
                await self.service.stop()
        for task in list(self.tasks):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, self.ix.query_timeout_s + 5)
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _handler(self, request_type: type[Message], run: Callable[[duckdb.DuckDBPyConnection, Any], Message]):
        async def handle(request: Request) -> None:
            # Answer in a task of its own: the endpoint's subscription then takes the next request at once.
            task = asyncio.create_task(self._answer(request, request_type, run))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        return handle

    async def _answer(self, request: Request, request_type: type[Message],
                      run: Callable[[duckdb.DuckDBPyConnection, Any], Message]) -> None:
        try:
            try:
                query = request_type.decode(request.data)
            except SchemaError as exc:
                raise QueryError(ErrorCode.BAD_REQUEST, f"bad request: {exc}") from None
            answer = (await self._run(run, query)).encode()
            if len(answer) > self.nc.max_payload:
                raise QueryError(ErrorCode.TOO_LARGE, f"the answer ({len(answer) / 1e6:.1f} MB) is larger than one "
                                 f"NATS message ({self.nc.max_payload / 1e6:.1f} MB): narrow the range or lower the "
                                 "limit")
            await request.respond(answer)
        except QueryError as exc:
            self.errors += 1
            log.debug("query %s refused: %s", request.subject, exc)
            await _respond_error(request, exc.code, str(exc))
        except Exception as exc:  # a bug or a broken database: answer, log, keep serving
            self.errors += 1
            log.exception("query %s failed", request.subject)
            await _respond_error(request, ErrorCode.INTERNAL, f"the indexer failed on this query: "
                                 f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    async def _run(self, run: Callable[[duckdb.DuckDBPyConnection, Any], Message], query: Message) -> Message:
        async with self.slots:
            cur = self.con.cursor()
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self.pool, _call, run, cur, query)
            try:
                return await asyncio.wait_for(asyncio.shield(future), self.ix.query_timeout_s)
            except TimeoutError:
                cur.interrupt()
                with contextlib.suppress(Exception):
                    await future
                raise QueryError(ErrorCode.TIMEOUT, f"the query took longer than {self.ix.query_timeout_s:g} s and "
                                 "was stopped: narrow it (a shorter range, one camera, a LIMIT)") from None
            finally:
                with contextlib.suppress(Exception):
                    cur.close()

    def _sql(self, cur: duckdb.DuckDBPyConnection, query: SqlRequest) -> Message:
        return run_readonly(cur, query.sql, min(query.max_rows or self.ix.max_rows, self.ix.max_rows))


def _call(run: Callable[[duckdb.DuckDBPyConnection, Any], Message], cur: duckdb.DuckDBPyConnection,
          query: Message) -> Message:
    """Run one query on its cursor; errors a user can fix become QueryErrors."""
    try:
        return run(cur, query)
    except CameraNotFound as exc:
        raise QueryError(ErrorCode.NOT_FOUND, str(exc)) from None
    except (QueryRefused, QueryFailed) as exc:
        raise QueryError(ErrorCode.BAD_REQUEST, str(exc)) from None
    except SchemaError as exc:  # an answer that does not validate: a bug, said plainly
        raise QueryError(ErrorCode.INTERNAL, f"the indexer built an invalid answer: {exc}") from None
    except SpectareError as exc:
        raise QueryError(ErrorCode.BAD_REQUEST, str(exc)) from None


async def _respond_error(request: Request, code: ErrorCode, message: str) -> None:
    with contextlib.suppress(Exception):  # the asker may be gone
        await request.respond_error(code.value, " ".join(message.split())[:1000])


def _semver(version: str) -> str:
    parts = version.split(".")
    return ".".join((parts + ["0", "0", "0"])[:3]) if all(p.isdigit() for p in parts) else "0.0.0"
