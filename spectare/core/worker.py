"""The loop every per-camera service shares: claim cameras through leases, run one task per camera,
follow the registry live, and give everything back on shutdown.

A service supplies `run_camera(config, lease)`, a coroutine that works on one camera until it is
cancelled. This module decides when to start, restart and stop those tasks:
  - a lease naming this worker's id that this process does not hold (its predecessor's, after a crash and
    restart with the same `[leases] worker_id`) is taken back at once, at a new token;
  - a registered camera without a live lease of this role is claimed (up to `max_cameras`);
  - leases are renewed by a task of their own, `RENEWALS_PER_TTL` times per TTL, so a busy claim round or
    registry change never delays them; a lease that cannot be renewed stops its camera at once (another
    worker may own it now), and a process whose worker id was taken over by another stops all of them;
  - a camera changed in the registry is restarted with the new config when a field the service uses
    changed (`restart_on`: a detection setting must not cut the recording), a removed one stopped;
  - a task that crashes is restarted after a pause, keeping its lease;
  - after the lease bucket failed to answer (a NATS cluster electing its leader), no camera is claimed for two
    renewal intervals: leases that expired meanwhile belong to workers still running them, which take them back
    with their next renewal (`LeaseTable.renew`); a camera claimed away would start a new session, a gap.
Every task started again under a lease gets a new fencing token (`LeaseTable.refence`), so it never repeats
a session id of the task before it.
"""

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from nats.js import JetStreamContext

from spectare.core.config import Settings
from spectare.core.consumer import NATS_ERRORS
from spectare.core.leases import (
    Lease,
    LeaseTable,
    claim_delay,
    claims_wait,
    plan_adoptions,
    plan_claims,
    renew_interval,
)
from spectare.core.logs import LogOnce
from spectare.core.registry import CameraRegistry
from spectare.schemas import CameraConfig

log = logging.getLogger(__name__)

RunCamera = Callable[[CameraConfig, Lease], Coroutine[Any, Any, None]]


def new_worker_id(role: str) -> str:
    return f"{role}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def worker_identity(role: str, configured: str | None) -> str:
    """`[leases] worker_id` with `{host}` filled in, or a new identity of this process's own."""
    if not configured:
        return new_worker_id(role)
    return configured.replace("{host}", socket.gethostname())


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
        self.log_once = LogOnce(log)
        self.crash_pause_s = crash_pause_s
        self.worker_id = worker_identity(role, settings.leases.worker_id)
        self.registered: dict[str, CameraConfig] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.leases: LeaseTable | None = None
        self.free_since: dict[str, float] = {}  # free cameras, since when (monotonic): long free ones go to anyone
        self.standing_by: str | None = None  # the process that holds our worker id, while it is not us
        # A registry change or a regained seat: take back this id's own leases now, not at the next round (free
        # cameras wait for it: workers starting together all get a chance at them).
        self.wake = asyncio.Event()
        self.longest_renewal_gap_s = 0.0  # between two renewal rounds: how close the leases came to expiring
        self.bus_trouble_at = -math.inf  # when a claim or renewal round last failed on NATS (monotonic)

    async def run(self, stop: asyncio.Event) -> None:
        registry = await CameraRegistry.open(self.js, self.settings)
        self.leases = await LeaseTable.open(self.js, self.settings, self.role, self.worker_id)
        self.standing_by = await self.leases.take_seat(starting=True)
        log.info("%s worker %s up (at most %d cameras, lease TTL %.1fs)", self.role, self.worker_id,
                 self.max_cameras, self.leases.ttl_s)
        if self.standing_by:
            self._say_standing_by()
        watcher = asyncio.create_task(self._follow_registry(registry))
        renewer = asyncio.create_task(self._renew_forever(stop))
        try:
            next_round = time.monotonic()
            while not stop.is_set():
                self.wake.clear()
                full_round = time.monotonic() >= next_round
                try:
                    await self._reap_crashed()
                    if not self.standing_by:
                        await self._claim_free(adopt_only=not full_round)
                except NATS_ERRORS as exc:  # NATS away, or a cluster electing a leader: the next round tries again
                    self.bus_trouble_at = time.monotonic()
                    self.log_once.warning("claim", "%s claim round failed (%s); trying again next round", self.role,
                                          str(exc) or type(exc).__name__)
                if full_round:
                    next_round = time.monotonic() + self.claim_interval_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_first(stop.wait(), self.wake.wait()),
                                           max(next_round - time.monotonic(), 0))
        finally:
            watcher.cancel()
            renewer.cancel()
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
                    await self._restart(change.name)
            self.wake.set()

    async def _renew_forever(self, stop: asyncio.Event) -> None:
        assert self.leases is not None
        interval = renew_interval(self.leases.ttl_s)
        last = time.monotonic()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(interval - (time.monotonic() - last), 0))
            if stop.is_set():
                return
            gap = time.monotonic() - last
            self.longest_renewal_gap_s = max(self.longest_renewal_gap_s, gap)
            if gap > self.leases.ttl_s / 2:
                log.warning("%s leases renewed %.1fs after the last time (TTL %.1fs): this machine is too busy to "
                            "keep them reliably", self.role, gap, self.leases.ttl_s)
            last = time.monotonic()
            try:
                await self._renew_round()
            except Exception as exc:  # NATS away: the leases outlive a few missed rounds; keep trying
                self.bus_trouble_at = time.monotonic()
                log.warning("%s lease renewal failed: %s", self.role, exc or type(exc).__name__)

    async def _renew_round(self) -> None:
        """The seat first, so it ages no more than the leases: a dead worker stops counting as live no later
        than its cameras come free, and the others take them with a fair share in the same claim round."""
        assert self.leases is not None
        if self.standing_by:
            self.standing_by = await self.leases.take_seat(starting=False)
            if not self.standing_by:
                log.info("%s worker %s: the worker id is free again; taking cameras", self.role, self.worker_id)
                self.wake.set()
            return
        holder = await self.leases.keep_seat()
        if holder:
            self.standing_by = holder
            self._say_standing_by()
            for camera in list(self.tasks):
                await self._stop(camera, release=False)
            self.leases.forget_all()
            return
        cameras = list(self.leases.held)
        renewed = await asyncio.gather(*(self.leases.renew(camera) for camera in cameras))
        for camera, ok in zip(cameras, renewed, strict=True):
            if not ok:
                await self._stop(camera, release=False)

    def _say_standing_by(self) -> None:
        log.error("%s worker id %s is in use by another process (%s): this one holds no camera until that one "
                  "stops; give each process its own [leases] worker_id", self.role, self.worker_id, self.standing_by)

    async def _claim_free(self, adopt_only: bool) -> None:
        assert self.leases is not None
        mine = set(self.leases.held)
        if len(mine) >= self.max_cameras or set(self.registered) <= mine:
            self.free_since = {}
            return  # nothing this worker could take: spare the lookups
        owners, workers = await self.leases.snapshot()
        for camera in plan_adoptions(set(self.registered), owners, mine, self.worker_id, self.max_cameras):
            lease = await self.leases.adopt(camera)
            if lease is not None:
                log.info("took back camera %s from an earlier process of %s (fencing token %d)", camera,
                         self.worker_id, lease.token)
                self._start(self.registered[camera], lease)
        trouble = max(self.bus_trouble_at, self.leases.unanswered_at)
        if adopt_only or claims_wait(time.monotonic() - trouble, self.leases.ttl_s):
            return
        mine = set(self.leases.held)
        # Free for a whole claim interval, not merely since the last round (rounds also run on a registry change):
        # the workers whose fair share it is had their chance.
        now = time.monotonic()
        self.free_since = {c: self.free_since.get(c, now) for c in set(self.registered) - set(owners) - mine}
        long_free = {c for c, since in self.free_since.items() if now - since >= self.claim_interval_s}
        candidates = plan_claims(set(self.registered), owners, mine, self.max_cameras, max(workers, 1), long_free)
        if not candidates:
            return
        await asyncio.sleep(claim_delay(len(mine), self.max_cameras, self.claim_interval_s))
        for camera in candidates:
            config = self.registered.get(camera)
            if config is None or self.standing_by or camera in self.leases.held:
                continue
            lease = await self.leases.claim(camera)
            if lease is not None:
                log.info("claimed camera %s (fencing token %d)", camera, lease.token)
                self._start(config, lease)

    def _start(self, config: CameraConfig, lease: Lease) -> None:
        self.tasks[config.name] = asyncio.create_task(self.run_camera(config, lease), name=f"{self.role}:{config.name}")

    async def _restart(self, camera: str) -> None:
        """Start the camera's task again under its lease, at a new token; released if it cannot be."""
        assert self.leases is not None
        config = self.registered.get(camera)
        lease = await self.leases.refence(camera) if config is not None else None
        if config is not None and lease is not None:
            self._start(config, lease)
        else:
            await self.leases.release(camera)

    async def _reap_crashed(self) -> None:
        for camera, task in list(self.tasks.items()):
            if not task.done():
                continue
            error = task.exception() if not task.cancelled() else None
            log.error("%s task for camera %s ended (%s); restarting in %.0fs", self.role, camera,
                      f"{type(error).__name__}: {error}" if error else "no error", self.crash_pause_s)
            del self.tasks[camera]
            await asyncio.sleep(self.crash_pause_s)
            await self._restart(camera)

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


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Return when the first of `waits` does; the others are cancelled."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
