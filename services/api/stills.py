"""The last `snapshot.jpg` of each camera, kept per process, so that a grid of viewers polling every second costs one
JPEG encode per keyframe, not one per request: the answer is named by its keyframe (session and sequence, its
ETag), the first request for a new keyframe encodes it (requests arriving meanwhile wait for that one encode),
the others take the kept bytes, and a client sending the ETag back gets 304 without any. At most `max_cameras`
cameras are kept (least recently asked for goes first)."""

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter

from .httpcache import quoted_etag


def keyframe_etag(session: str, seq: int) -> str:
    """The ETag of a camera's picture from the keyframe it shows: a session id never repeats, nor a sequence in it."""
    return quoted_etag(f"{session}-{seq}")


@dataclass(frozen=True)
class Still:
    etag: str
    jpeg: bytes


class StillCache:
    def __init__(self, max_cameras: int, registry: CollectorRegistry | None = None) -> None:
        self.max_cameras = max_cameras
        self._stills: OrderedDict[str, Still] = OrderedDict()
        self._making: dict[tuple[str, str], asyncio.Task[bytes]] = {}
        self.encodes = Counter("spectare_api_snapshot_encodes", "snapshot.jpg pictures encoded (one per keyframe "
                               "shown, however many viewers ask)", registry=registry)
        self.served = Counter("spectare_api_snapshots_served", "snapshot.jpg answers, by how they were made",
                              ["how"], registry=registry)

    async def jpeg(self, camera: str, etag: str, make: Callable[[], Awaitable[bytes]]) -> bytes:
        """The picture named `etag` of `camera`: kept, being made, or made now by `make()` (once for everyone who
        asks meanwhile; a caller that goes away does not cancel it for the others)."""
        kept = self._stills.get(camera)
        if kept is not None and kept.etag == etag:
            self._stills.move_to_end(camera)
            self.served.labels("kept").inc()
            return kept.jpeg
        task = self._making.get((camera, etag))
        if task is None:
            task = asyncio.ensure_future(make())
            self._making[(camera, etag)] = task
            task.add_done_callback(lambda done: self._keep(camera, etag, done))
            self.encodes.inc()
            self.served.labels("encoded").inc()
        else:
            self.served.labels("waited").inc()
        return await asyncio.shield(task)

    def not_modified(self) -> None:
        self.served.labels("not_modified").inc()

    def _keep(self, camera: str, etag: str, done: "asyncio.Task[bytes]") -> None:
        self._making.pop((camera, etag), None)
        if done.cancelled() or done.exception() is not None:
            return
        self._stills[camera] = Still(etag, done.result())
        self._stills.move_to_end(camera)
        while len(self._stills) > self.max_cameras:
            self._stills.popitem(last=False)


def get_stills(request: Request) -> StillCache:
    stills: StillCache = request.app.state.stills
    return stills
