"""Where the motion gate keeps each camera's previous picture: the `motion` KV bucket, keyed by camera.

Detector replicas share one consumer, so consecutive keyframes of a camera may go to different
replicas; keeping the picture in KV (not in a replica's memory) means no state is lost when replicas
come and go, and cameras never share one. Writes are compare-and-set on the entry's revision and never
replace the picture of a later keyframe with an earlier one.
"""

import logging

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from spectare.core.bus import open_bucket
from spectare.core.config import Settings
from spectare.core.errors import SchemaError
from spectare.schemas import MotionState

from .gate import newer

log = logging.getLogger(__name__)

SAVE_ATTEMPTS = 5


class MotionStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings) -> "MotionStore":
        return cls(await open_bucket(js, settings, settings.names.motion_bucket))

    async def load(self, camera: str) -> tuple[MotionState | None, int | None]:
        """The camera's stored picture and the entry's revision (None, None when there is none)."""
        try:
            entry = await self.kv.get(camera)
        except KeyNotFoundError:  # also a deleted or expired entry
            return None, None
        if not entry.value:
            return None, entry.revision
        try:
            state = MotionState.decode(entry.value)
        except SchemaError as exc:
            log.warning("camera %s: stored motion picture is unreadable (%s); starting afresh", camera, exc)
            return None, entry.revision
        return (state if state.camera == camera else None), entry.revision

    async def save(self, state: MotionState, revision: int | None) -> None:
        """Store `state` unless a later keyframe's picture got there first."""
        payload = state.encode()
        for _ in range(SAVE_ATTEMPTS):
            try:
                if revision is None:
                    await self.kv.create(state.camera, payload)
                else:
                    await self.kv.update(state.camera, payload, last=revision)
                return
            except KeyWrongLastSequenceError:  # another replica wrote in between
                current, revision = await self.load(state.camera)
                if current is not None and not newer(state, current):
                    return
        log.warning("camera %s: motion picture not saved after %d contended attempts", state.camera, SAVE_ATTEMPTS)
