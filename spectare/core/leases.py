"""Camera leases in the KV bucket `leases`: which worker of a role (ingest, segmenter) owns which camera.

A lease is the key `<role>.<camera>` holding the owner's worker id. It is created only if absent
(`create`), renewed by compare-and-set on its revision (`update(last=...)`), and expires with the
bucket's TTL when its owner stops renewing, so a dead worker's cameras are free again within the TTL.
The revision at which a lease was claimed is the owner's fencing token: it grows with every claim,
so sessions built on it never collide with an earlier owner's.
"""

import contextlib
import logging
import math
import random
import re
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from spectare.core.bus import LEASE_TTL_S
from spectare.core.config import Settings

log = logging.getLogger(__name__)


@dataclass
class Lease:
    camera: str
    token: int  # revision at claim time: the fencing token
    revision: int  # revision of the last successful renewal


def plan_claims(registered: set[str], owners: dict[str, str], mine: set[str], max_cameras: int,
                live_workers: int, long_free: set[str]) -> list[str]:
    """Cameras this worker should try to claim now.

    Each worker first fills up to its fair share (cameras / live workers, at most `max_cameras`), so
    cameras spread over the workers; a camera that stayed free for a whole round (the others are
    full) is taken by anyone with room left. Shuffled, so workers racing for the same free cameras
    spread over them instead of all trying the same one first.
    """
    free = list(registered - set(owners) - mine)
    random.shuffle(free)
    share = min(max_cameras, math.ceil(len(registered) / max(live_workers, 1)))
    picks = free[: max(share - len(mine), 0)]
    room = max_cameras - len(mine) - len(picks)
    leftovers = [c for c in free if c in long_free and c not in picks]
    return picks + leftovers[: max(room, 0)]


def claim_delay(held: int, capacity: int, claim_interval_s: float) -> float:
    """Wait before claiming: the busier the worker, the longer, so idle workers win free cameras."""
    if capacity <= 0:
        return claim_interval_s
    return claim_interval_s * 0.5 * min(held / capacity, 1.0) + random.uniform(0, 0.05)


class LeaseTable:
    """The leases of one role, as seen and changed by one worker."""

    def __init__(self, kv: KeyValue, role: str, worker_id: str) -> None:
        self.kv = kv
        self.role = role
        self.worker_id = worker_id
        self.held: dict[str, Lease] = {}

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings, role: str, worker_id: str) -> "LeaseTable":
        return cls(await js.key_value(settings.names.leases_bucket), role, worker_id)

    @property
    def ttl_s(self) -> float:
        return LEASE_TTL_S

    def _key(self, camera: str) -> str:
        return f"{self.role}.{camera}"

    async def snapshot(self) -> tuple[dict[str, str], int]:
        """(camera -> owner for every live lease of this role, number of live workers of this role)."""
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return {}, 0
        owners, members = {}, 0
        for key in keys:
            if key.startswith(self._member_prefix):
                members += 1
            elif key.startswith(f"{self.role}."):
                try:
                    entry = await self.kv.get(key)
                except KeyNotFoundError:
                    continue
                if entry.value:
                    owners[key.split(".", 1)[1]] = entry.value.decode()
        return owners, members

    async def owners(self) -> dict[str, str]:
        return (await self.snapshot())[0]

    async def live_workers(self) -> int:
        """How many workers of this role announce themselves (keys only, no values read)."""
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return 0
        return sum(key.startswith(self._member_prefix) for key in keys)

    async def announce(self) -> None:
        """Say this worker is alive (expires with the TTL like a lease): workers count each other to
        share cameras fairly."""
        await self.kv.put(self._member_prefix + _key_safe(self.worker_id), b"")

    async def withdraw(self) -> None:
        with contextlib.suppress(KeyNotFoundError):
            await self.kv.delete(self._member_prefix + _key_safe(self.worker_id))

    @property
    def _member_prefix(self) -> str:
        return f"members.{self.role}."

    async def claim(self, camera: str) -> Lease | None:
        """Take the lease if nobody holds it; None if someone does."""
        try:
            revision = await self.kv.create(self._key(camera), self.worker_id.encode())
        except KeyWrongLastSequenceError:
            return None
        lease = Lease(camera, revision, revision)
        self.held[camera] = lease
        return lease

    async def renew(self, camera: str) -> bool:
        """Extend the lease; False (and forgotten) if it expired or another worker took it."""
        lease = self.held.get(camera)
        if lease is None:
            return False
        try:
            lease.revision = await self.kv.update(self._key(camera), self.worker_id.encode(), last=lease.revision)
            return True
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            del self.held[camera]
            log.warning("lost the %s lease on camera %s", self.role, camera)
            return False

    async def release(self, camera: str) -> None:
        """Give the lease back at once (graceful stop), so another worker need not wait for the TTL."""
        lease = self.held.pop(camera, None)
        if lease is None:
            return
        try:
            await self.kv.delete(self._key(camera), last=lease.revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            pass  # already expired or taken: nothing of ours to give back


def _key_safe(text: str) -> str:
    return re.sub(r"[^-_=a-zA-Z0-9]", "_", text)
