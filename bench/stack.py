"""The stack the browser benchmarks run against, started from nothing in a work folder."""

import asyncio
import sys
import time
from pathlib import Path

import httpx

from spectare.core.config import settings_env
from spectare.core.registry import CameraRegistry
from spectare.core.tokens import TokenStore
from spectare.local.process import ManagedProcess, free_port
from spectare.local.servers import NatsServer, S3Credentials, SeaweedS3
from spectare.local.testcam import RtspTestCamera
from spectare.schemas import CameraConfig

from .servers import open_bench_bus


class BenchStack:
    """The servers and services (nats-server, SeaweedFS, one RTSP test camera serving a mount per camera, the
    segmenter, indexer and API; ingest by `restart_ingest`), with the API's address and a read token."""

    def __init__(self, work: Path, cameras: dict[str, Path], segment_seconds: int) -> None:
        self.work = work
        self.cameras, self.segment_seconds = cameras, segment_seconds
        self.nats = NatsServer(work / "nats", work / "nats.log")
        self.s3 = SeaweedS3(work / "s3", work / "s3.log", S3Credentials.generate())
        self.camera = RtspTestCamera(cameras, work / "testcam.log")
        self.processes: dict[str, ManagedProcess] = {}
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.token = ""

    async def start(self) -> None:
        self.nats.start()
        self.s3.start()
        self.camera.start()
        self.settings, self.nc, self.js = await open_bench_bus(self.nats, self.s3, self.work)
        registry = await CameraRegistry.open(self.js, self.settings)
        for name in self.cameras:
            await registry.add(CameraConfig(name=name, url=self.camera.url(name), detect=False,
                                            segment_seconds=self.segment_seconds))
        self.token = (await (await TokenStore.open(self.js, self.settings)).create("read", "bench")).token
        self.env = {**settings_env(self.settings), "SPECTARE_LOG_LEVEL": "WARNING"}
        self.start_service("segmenter")
        self.start_service("indexer", SPECTARE_INDEXER__DATABASE=str(self.work / "index.duckdb"))
        self.start_service("api", SPECTARE_API__PORT=str(self.port))
        await self.until(self._answering, 30, "the API answering")

    def start_service(self, name: str, **env: str) -> ManagedProcess:
        process = ManagedProcess(name, [sys.executable, "-m", f"spectare.{name}"], self.work / f"{name}.log",
                                 env={**self.env, **env})
        process.start()
        self.processes[name] = process
        return process

    def restart_ingest(self, **env: str) -> None:
        if "ingest" in self.processes:
            self.processes.pop("ingest").stop()
        self.start_service("ingest", **env)

    def pipeline_pids(self) -> list[int]:
        """What records the camera: ingest, the segmenter, nats-server."""
        nats = self.nats.process.pid
        assert nats is not None
        return [self.pid("ingest"), self.pid("segmenter"), nats]

    def pid(self, name: str) -> int:
        pid = self.processes[name].pid
        assert pid is not None
        return pid

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"},
                                 timeout=60)

    async def _answering(self) -> bool:
        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:
                return (await client.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    async def chunks(self, camera: str, start: float, end: float | None = None) -> list[dict]:
        async with self.client() as client:
            params = {"start": repr(start), **({"end": repr(end)} if end is not None else {})}
            answer = await client.get(f"/cameras/byname/{camera}/footage", params=params)
            return answer.json()["chunks"] if answer.status_code == 200 else []

    async def until(self, check, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if not process.alive():
                    raise RuntimeError(f"{name} exited: {process.log_tail()}")
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.5)
        raise RuntimeError(f"{what} not reached within {timeout:.0f} s")

    async def stop(self) -> None:
        for process in self.processes.values():
            process.stop()
        if hasattr(self, "nc"):
            await self.nc.close()
        self.camera.stop()
        self.s3.stop()
        self.nats.stop()
