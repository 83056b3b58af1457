"""Live marks: which cameras someone watches live right now, so ingest can send their packets sooner.

Ingest groups a camera's packets (up to `[ingest] group_max_s`, 1 s) because one message per group costs far less
CPU than one per packet; a frame then waits in its group, which a recording does not mind and a live viewer sees.
An API process that streams a camera live puts the key `<camera>.<holder>` in the `live` bucket and puts it again
every `LIVE_MARK_REFRESH_S` while it streams; it deletes it when the last viewer has gone. Ingest watches the
bucket and uses `[ingest] live_group_max_s` for a camera while any mark of it is fresh.

The bucket's TTL forgets the marks of an API process that died without deleting them, but JetStream tells a
watcher nothing when a message ages out, so `LiveMarks` applies the same rule itself: a mark not put again within
`LIVE_MARK_TTL_S` no longer counts.
"""

import asyncio
import logging
import time

from nats.js.kv import KeyValue

from spectare.core.bus import LIVE_MARK_TTL_S
from spectare.core.errors import InvalidName
from spectare.schemas import live_mark_camera

log = logging.getLogger(__name__)

LIVE_MARK_REFRESH_S = 10.0  # well inside the TTL: one lost put does not end the mark
WATCH_RETRY_S = 2.0


class LiveMarks:
    """The marks seen so far and when each was last put (pure: the watcher feeds it, ingest asks it per packet)."""

    def __init__(self, ttl_s: float = LIVE_MARK_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._marks: dict[str, tuple[str, float]] = {}  # key -> (camera, monotonic time of its last put)
        self._latest: dict[str, float] = {}  # camera -> the latest put of any of its marks

    def put(self, key: str, now: float) -> None:
        try:
            camera = live_mark_camera(key)
        except InvalidName:
            log.debug("ignored live mark %r: not <camera>.<holder>", key)
            return
        self._marks[key] = (camera, now)
        self._latest[camera] = max(self._latest.get(camera, now), now)

    def remove(self, key: str) -> None:
        mark = self._marks.pop(key, None)
        if mark is not None:
            camera = mark[0]
            times = [at for cam, at in self._marks.values() if cam == camera]
            if times:
                self._latest[camera] = max(times)
            else:
                del self._latest[camera]

    def clear(self) -> None:
        self._marks.clear()
        self._latest.clear()

    def watched(self, camera: str, now: float) -> bool:
        """Whether anyone watches `camera` live: a mark of it put within the TTL."""
        latest = self._latest.get(camera)
        return latest is not None and now - latest < self.ttl_s

    def cameras(self, now: float) -> set[str]:
        return {camera for camera, latest in self._latest.items() if now - latest < self.ttl_s}


async def follow_live_marks(kv: KeyValue, marks: LiveMarks) -> None:
    """Feeds `marks` from the bucket, forever; a failed watch is started again (marks are re-read from scratch)."""
    complained = False
    while True:
        try:
            watcher = await kv.watchall()
            marks.clear()  # the watcher delivers every mark there is first
            try:
                async for entry in watcher:
                    if entry is None:  # the initial values are in
                        continue
                    if entry.operation in ("DEL", "PURGE"):
                        marks.remove(entry.key)
                    else:
                        marks.put(entry.key, time.monotonic())
                    complained = False
            finally:
                await watcher.stop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - NATS away: keep the marks we have, they age out by themselves
            if not complained:
                log.warning("live marks: watching the bucket failed (%s); retrying", exc)
                complained = True
            await asyncio.sleep(WATCH_RETRY_S)
