"""The indexer's scheduled jobs: retention sweeps and Parquet exports, every `retention_interval_s` and
`export_interval_s` (0: off), and on request (`spectare retention run`, `spectare export run`) through the
query service. Both write through the indexer's single writer (`Indexer.write`)."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import duckdb
from minio import Minio
from nats.js import JetStreamContext

from spectare.core.config import Settings
from spectare.core.registry import CameraRegistry
from spectare.core.retry import describe_error
from spectare.schemas import CameraConfig
from spectare.schemas.queries import (
    CameraRetention,
    ExportRequest,
    ExportResponse,
    RetentionRequest,
    RetentionResponse,
)

from .export import export_once
from .retention import QUEUE_DDL, Sweeper
from .settings import IndexerSettings

log = logging.getLogger(__name__)

Write = Callable[[Callable[[duckdb.DuckDBPyConnection], Any]], Awaitable[Any]]


class Maintenance:
    def __init__(self, js: JetStreamContext, settings: Settings, ix: IndexerSettings, s3: Minio, write: Write) -> None:
        self.js = js
        self.settings = settings
        self.ix = ix
        self.s3 = s3
        self.write = write
        names = settings.names
        self.sweeper = Sweeper(js, s3, settings.s3.bucket, ix, names.footage_stream, names.detections_stream,
                               names.events_stream, write,
                               self._cameras)
        self.export_lock = asyncio.Lock()

    async def start(self) -> list[asyncio.Task]:
        await self.write(lambda cur: cur.execute(QUEUE_DDL))
        jobs: list[tuple[str, float, Callable[[], Awaitable[Any]]]] = [
            ("retention", self.ix.retention_interval_s, self.retention),
            ("export", self.ix.export_interval_s, self.export)]
        return [asyncio.create_task(self._every(name, interval, job), name=f"indexer-{name}")
                for name, interval, job in jobs if interval > 0]

    async def retention(self, request: RetentionRequest | None = None) -> RetentionResponse:
        report = await self.sweeper.sweep(dry_run=bool(request and request.dry_run))
        return RetentionResponse(
            dry_run=report.dry_run, chunks=report.chunks, bytes=report.chunk_bytes, detections=report.detections,
            snapshots=report.snapshots, resumed=report.resumed, seconds=round(report.seconds, 3),
            cameras=tuple(CameraRetention(camera=camera, **tallies) for camera, tallies in
                          sorted(report.by_camera.items())))

    async def export(self, _request: ExportRequest | None = None) -> ExportResponse:
        async with self.export_lock:
            report = await export_once(self.write, self.s3, self.settings.s3.bucket, self.ix.export_prefix)
        return ExportResponse(prefix=self.ix.export_prefix, partitions=report.partitions, rows=report.rows,
                              files=report.files, bytes=report.bytes, seconds=round(report.seconds, 3))

    async def _cameras(self) -> list[CameraConfig]:
        return await (await CameraRegistry.open(self.js, self.settings)).list()

    async def _every(self, name: str, interval: float, job: Callable[[], Awaitable[Any]]) -> None:
        await asyncio.sleep(min(interval, 60.0))  # first run soon after start, not at once
        while True:
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # S3 or NATS away, a bug: the next run tries again
                log.warning("scheduled %s failed (%s); next try in %.0fs", name, describe_error(exc), interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.sleep(interval)
