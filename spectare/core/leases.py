"""Camera leases in the KV bucket `leases`: which worker of a role (ingest, segmenter) owns which camera.

A lease is the key `<role>.<camera>` holding the owner's worker id. It is created only if absent
(`create`), renewed by compare-and-set on its revision (`update(last=...)`), and expires with the
bucket's TTL (`[leases] ttl_s`) when its owner stops renewing, so a dead worker's cameras are free again
within the TTL. The revision at which a lease was claimed is the owner's fencing token: it grows with
every claim, so sessions built on it never collide with an earlier owner's.

A lease can also expire while its owner is alive and renewing: on a NATS cluster that lost the node leading the
bucket, nobody can write to the bucket until the other nodes elect a leader (4-9 s after a kill -9, longer than a
5 s TTL), and the new leader drops the lease as expired. A renewal that then finds the key absent creates it
again and keeps the camera, at the same token: nobody held it in between (a claim leaves the key, a release its
deletion), so the camera's recording never stopped and need not start a new session.

A worker id may outlive its process (`[leases] worker_id`): a restarted process then takes back the
leases still naming its id at once, by compare-and-set, each at a new revision (a new token, so its
sessions differ from the dead process's). Only the process holding the id's seat, the key
`members.<role>.<id>` naming that process (host, pid, a nonce), may do so. A process starting takes the
seat even from another (newest wins: the usual reason is that the old one is dead); a process that finds
its seat taken stops its cameras and stands by, taking the seat again only once it is free. So two
processes started by mistake with one id never both hold a camera: the newer one adopts every lease (new
tokens) and the older one stops within one renewal (`renew_interval`), publishing no session after that.
"""

import asyncio
import contextlib
import enum
import logging
import math
import os
import random
import re
import socket
import time
import uuid
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from nats.js.errors import (
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
    NoStreamResponseError,
    ServiceUnavailableError,
)
from nats.js.kv import KeyValue

from spectare.core.bus import open_bucket
from spectare.core.config import LeaseSettings, Settings

log = logging.getLogger(__name__)

RENEWALS_PER_TTL = 4  # three renewals in a row may be missed (a stalled machine) before a lease is lost
# A renewal whose answer did not come, or that no one could take (the bucket without a leader: "no response from
# stream", 503): the lease may still be ours; the next round tells.
UNANSWERED = (TimeoutError, nats.errors.TimeoutError, nats.errors.ConnectionClosedError,
              nats.errors.NoRespondersError, NoStreamResponseError, ServiceUnavailableError)


@dataclass
class Lease:
    camera: str
    token: int  # revision at claim time: the fencing token
    revision: int  # revision of the last successful renewal


class SeatMove(enum.Enum):
    """What a process does about its worker id's seat, given who holds it (`seat_move`)."""

    TAKE = "take"  # free: create it
    TAKE_OVER = "take over"  # another process's: replace it (compare-and-set on its revision)
    KEEP = "keep"  # ours: renew it
    STAND_BY = "stand by"  # another process's, and we are not starting: leave it, hold no camera


def seat_move(holder: str | None, me: str, starting: bool) -> SeatMove:
    """Newest wins: a starting process takes its id's seat from whoever holds it (typically its own dead
    predecessor, whose leases it then adopts); a running one that lost it stands by until it is free."""
    if holder is None:
        return SeatMove.TAKE
    if holder == me:
        return SeatMove.KEEP
    return SeatMove.TAKE_OVER if starting else SeatMove.STAND_BY


def renew_interval(ttl_s: float) -> float:
    return ttl_s / RENEWALS_PER_TTL


def claims_wait(since_trouble_s: float, ttl_s: float) -> bool:
    """Whether a worker holds back from claiming cameras this soon after the lease bucket failed to answer it:
    for two renewal intervals, the time a live owner whose lease expired meanwhile takes to renew it again."""
    return since_trouble_s < 2 * renew_interval(ttl_s)


def plan_adoptions(registered: set[str], owners: dict[str, str], mine: set[str], worker_id: str,
                   max_cameras: int) -> list[str]:
    """Leases naming this worker's id that this process does not hold: an earlier process with the same id
    held them (it died, or it stands by now). Only the seat's holder asks; they are its to take back at once."""
    ours = sorted(c for c, owner in owners.items() if owner == worker_id and c in registered and c not in mine)
    return ours[: max(max_cameras - len(mine), 0)]


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


def process_instance() -> str:
    """Names this process in its seat (and in the log line of a process that finds its seat taken)."""
    return f"{socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:8]}"


class LeaseTable:
    """The leases of one role, as seen and changed by one worker."""

    def __init__(self, kv: KeyValue, role: str, worker_id: str, ttl_s: float = LeaseSettings().ttl_s,
                 instance: str | None = None) -> None:
        self.kv = kv
        self.role = role
        self.worker_id = worker_id
        self.ttl_s = ttl_s
        self.instance = instance or process_instance()
        self.held: dict[str, Lease] = {}
        self.seat_revision: int | None = None
        self.unanswered_at = -math.inf  # when a renewal last went unanswered (monotonic)
        # One compare-and-set at a time per lease: a renewal racing a refence would fail on the other's
        # revision and drop a lease that is ours.
        self._updating: dict[str, asyncio.Lock] = {}

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings, role: str, worker_id: str) -> "LeaseTable":
        """The bucket's own TTL, not this process's setting, paces renewals: they must beat the real expiry."""
        kv = await open_bucket(js, settings, settings.names.leases_bucket)
        return cls(kv, role, worker_id, (await kv.status()).ttl or settings.leases.ttl_s)

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

    # -- the worker id's seat: it says this worker is alive (workers count each other to share cameras fairly)
    # and which process may act under the id.
    @property
    def _member_prefix(self) -> str:
        return f"members.{self.role}."

    @property
    def _seat_key(self) -> str:
        return self._member_prefix + _key_safe(self.worker_id)

    async def seat_holder(self) -> tuple[str | None, int]:
        """(the process holding this id's seat, or None if free; the seat's revision)."""
        try:
            entry = await self.kv.get(self._seat_key)
        except KeyNotFoundError:
            return None, 0
        return (entry.value or b"").decode() or None, entry.revision or 0

    async def take_seat(self, starting: bool) -> str | None:
        """Hold this id's seat; None when held (taken, taken over or kept), else the process that holds it (we
        stand by). Compare-and-set throughout: of processes racing for a seat, one wins each step."""
        for _ in range(3):
            holder, revision = await self.seat_holder()
            move = seat_move(holder, self.instance, starting)
            if move is SeatMove.STAND_BY:
                self.seat_revision = None
                return holder
            try:
                if move is SeatMove.TAKE:
                    self.seat_revision = await self.kv.create(self._seat_key, self.instance.encode())
                else:  # TAKE_OVER or KEEP
                    self.seat_revision = await self.kv.update(self._seat_key, self.instance.encode(), last=revision)
                if move is SeatMove.TAKE_OVER:
                    log.info("%s worker %s: took the id over from %s", self.role, self.worker_id, holder)
                return None
            except (KeyWrongLastSequenceError, KeyNotFoundError):
                continue  # changed in between: look again
        holder, _ = await self.seat_holder()
        return holder or "another process"

    async def keep_seat(self) -> str | None:
        """Renew the seat; None if still ours, else the process that took it (we must stand by now)."""
        if self.seat_revision is not None:
            try:
                self.seat_revision = await self.kv.update(self._seat_key, self.instance.encode(),
                                                          last=self.seat_revision)
                return None
            except (KeyWrongLastSequenceError, KeyNotFoundError):
                pass  # taken, expired (we were too slow) or an unanswered renewal that did land: look
            except UNANSWERED:
                self.unanswered_at = time.monotonic()
                return None  # no answer: the seat outlives a few of these (RENEWALS_PER_TTL)
        return await self.take_seat(starting=False)

    async def withdraw(self) -> None:
        """Free the seat (graceful stop): a restarted process with this id takes it at once."""
        if self.seat_revision is None:
            return
        with contextlib.suppress(KeyWrongLastSequenceError, KeyNotFoundError):
            await self.kv.delete(self._seat_key, last=self.seat_revision)
        self.seat_revision = None

    # -- leases
    async def claim(self, camera: str) -> Lease | None:
        """Take the lease if nobody holds it; None if someone does."""
        try:
            revision = await self.kv.create(self._key(camera), self.worker_id.encode())
        except KeyWrongLastSequenceError:
            return None
        return self._hold(camera, revision)

    async def adopt(self, camera: str) -> Lease | None:
        """Take over a lease that names this worker id (`plan_adoptions`), at a new revision: a new token. None
        if it no longer names us or changed in between (a twin renewing it: the next round looks again)."""
        try:
            entry = await self.kv.get(self._key(camera))
        except KeyNotFoundError:
            return None
        if (entry.value or b"").decode() != self.worker_id:
            return None
        try:
            revision = await self.kv.update(self._key(camera), self.worker_id.encode(), last=entry.revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            return None
        return self._hold(camera, revision)

    async def refence(self, camera: str) -> Lease | None:
        """A new token for a lease we hold, for a camera task started again under it (a changed camera, a crash):
        its sessions `<token>-<attempt>` must not repeat the previous task's, or JetStream would drop the new
        messages as duplicates (Nats-Msg-Id) within its duplicate window. None (and forgotten) if lost."""
        if not await self.renew(camera):
            return None
        return self._hold(camera, self.held[camera].revision)

    def _hold(self, camera: str, revision: int) -> Lease:
        lease = Lease(camera, revision, revision)
        self.held[camera] = lease
        return lease

    async def renew(self, camera: str) -> bool:
        """Extend the lease; False (and forgotten) if it expired or another worker took it."""
        async with self._updating.setdefault(camera, asyncio.Lock()):
            return await self._renew(camera)

    async def _renew(self, camera: str) -> bool:
        lease = self.held.get(camera)
        if lease is None:
            return False
        key, value = self._key(camera), self.worker_id.encode()
        try:
            try:
                lease.revision = await self.kv.update(key, value, last=lease.revision)
                return True
            except (KeyWrongLastSequenceError, KeyNotFoundError):
                # Expired unrenewed (the bucket had no leader for longer than the TTL) and still free: ours again.
                # last=0: only if the key has no entry at all; not `create`, which also writes over a deletion
                # (a release leaves one: another worker held the lease in between).
                lease.revision = await self.kv.update(key, value, last=0)
                log.warning("the %s lease on camera %s expired before it could be renewed; nobody had taken it: "
                            "kept", self.role, camera)
                return True
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            if self.held.get(camera) is lease:
                del self.held[camera]
            log.warning("lost the %s lease on camera %s", self.role, camera)
            return False
        except UNANSWERED:
            self.unanswered_at = time.monotonic()
            log.warning("renewing the %s lease on camera %s: no answer from NATS; trying again", self.role, camera)
            return True  # a lease outlives a few missed renewals; if this one landed, the next fails and we adopt

    async def release(self, camera: str) -> None:
        """Give the lease back at once (graceful stop), so another worker need not wait for the TTL."""
        async with self._updating.setdefault(camera, asyncio.Lock()):
            lease = self.held.pop(camera, None)
            if lease is None:
                return
            try:
                await self.kv.delete(self._key(camera), last=lease.revision)
            except (KeyWrongLastSequenceError, KeyNotFoundError):
                pass  # already expired or taken: nothing of ours to give back

    def forget_all(self) -> None:
        """Drop every lease without touching the bucket: the process that took our seat adopts them."""
        self.held.clear()


def _key_safe(text: str) -> str:
    return re.sub(r"[^-_=a-zA-Z0-9]", "_", text)
