"""The loop every per-camera service shares: claim cameras through leases, run one task per camera,
follow the registry live, and give everything back on shutdown.

A service supplies `run_camera(config, lease)`, a coroutine that works on one camera until it is
cancelled. This module decides when to start, restart and stop those tasks:
  - a registered camera without a live lease of this role is claimed (up to `max_cameras`);
  - a lease that cannot be renewed stops its camera at once (another worker may own it now);
  - a camera changed in the registry is restarted with the new config when a field the service uses
    changed (`restart_on`: a detection setting must not cut the recording), a removed one stopped;
  - a task that crashes is restarted after a pause, keeping its lease.
"""

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from nats.js import JetStreamContext

from spectare.core.config import Settings
from spectare.core.leases import Lease, LeaseTable, claim_delay, plan_claims
from spectare.core.registry import CameraRegistry
from spectare.schemas import CameraConfig

log = logging.getLogger(__name__)

RunCamera = Callable[[CameraConfig, Lease], Coroutine[Any, Any, None]]


def new_worker_id(role: str) -> str:
    return f"{role}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class CameraWorker:
    def __init__(self, js: JetStreamContext, settings: Settings, role: str, run_camera: RunCamera,
                 max_cameras: int, restart_on: frozenset[str], claim_interval_s: float = 1.0,
                 crash_pause_s: float = 2.0) -> None:
        self.js = js
        self.settings = settings
        self.role = role
        self.run_camera = run_camera
        self.max_cameras = max_cameras
        self.restart_on = restart_on
        self.claim_interval_s = claim_interval_s
        self.crash_pause_s = crash_pause_s
        self.worker_id = new_worker_id(role)
        self.registered: dict[str, CameraConfig] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.leases: LeaseTable | None = None
        self.free_last_round: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        registry = await CameraRegistry.open(self.js, self.settings)
        self.leases = await LeaseTable.open(self.js, self.settings, self.role, self.worker_id)
        log.info("%s worker %s up (at most %d cameras)", self.role, self.worker_id, self.max_cameras)
        watcher = asyncio.create_task(self._follow_registry(registry))
        await self.leases.announce()
        try:
            last_renew = time.monotonic()
            while not stop.is_set():
                if time.monotonic() - last_renew >= self.leases.ttl_s / 3:
                    await self.leases.announce()
                    await self._renew_all()
                    last_renew = time.monotonic()
                await self._reap_crashed()
                await self._claim_free()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.claim_interval_s)
        finally:
            watcher.cancel()
            for camera in list(self.tasks):
                await self._stop(camera, release=True)
            await self.leases.withdraw()
            log.info("%s worker %s stopped", self.role, self.worker_id)

    async def _follow_registry(self, registry: CameraRegistry) -> None:
        assert self.leases is not None
        async for change in registry.watch():
            old = self.registered.get(change.name)
            if change.config is None:
                self.registered.pop(change.name, None)
                if change.name in self.tasks:
                    log.info("camera %s removed from the registry: stopping", change.name)
                    await self._stop(change.name, release=True)
            else:
                self.registered[change.name] = change.config
                if change.name in self.tasks and old is not None and self._changed(old, change.config):
                    log.info("camera %s changed in the registry: restarting", change.name)
                    await self._stop(change.name, release=False)
                    self._start(change.config, self.leases.held[change.name])

    async def _renew_all(self) -> None:
        assert self.leases is not None
        for camera in list(self.leases.held):
            if not await self.leases.renew(camera):
                await self._stop(camera, release=False)

    async def _claim_free(self) -> None:
        assert self.leases is not None
        mine = set(self.leases.held)
        if len(mine) >= self.max_cameras or set(self.registered) <= mine:
            self.free_last_round = set()
            return  # nothing this worker could take: spare the lookups
        owners, workers = await self.leases.snapshot()
        candidates = plan_claims(set(self.registered), owners, mine, self.max_cameras, max(workers, 1),
                                 self.free_last_round)
        self.free_last_round = set(self.registered) - set(owners) - mine
        if not candidates:
            return
        await asyncio.sleep(claim_delay(len(mine), self.max_cameras, self.claim_interval_s))
        for camera in candidates:
            config = self.registered.get(camera)
            if config is None:
                continue
            lease = await self.leases.claim(camera)
            if lease is not None:
                log.info("claimed camera %s (fencing token %d)", camera, lease.token)
                self._start(config, lease)

    def _start(self, config: CameraConfig, lease: Lease) -> None:
        self.tasks[config.name] = asyncio.create_task(self.run_camera(config, lease), name=f"{self.role}:{config.name}")

    async def _reap_crashed(self) -> None:
        assert self.leases is not None
        for camera, task in list(self.tasks.items()):
            if not task.done():
                continue
            error = task.exception() if not task.cancelled() else None
            log.error("%s task for camera %s ended (%s); restarting in %.0fs", self.role, camera,
                      f"{type(error).__name__}: {error}" if error else "no error", self.crash_pause_s)
            del self.tasks[camera]
            await asyncio.sleep(self.crash_pause_s)
            config, lease = self.registered.get(camera), self.leases.held.get(camera)
            if config is not None and lease is not None:
                self._start(config, lease)
            else:
                await self.leases.release(camera)

    async def _stop(self, camera: str, release: bool) -> None:
        task = self.tasks.pop(camera, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if release and self.leases is not None:
            await self.leases.release(camera)

    def _changed(self, old: CameraConfig, new: CameraConfig) -> bool:
        return old.model_dump(include=set(self.restart_on)) != new.model_dump(include=set(self.restart_on))
