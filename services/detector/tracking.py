"""Tracking with shared state: a camera's keyframes advance one `TrackerState` in the `tracks` KV bucket, whichever
replica runs them, and the events they raise go to `events.<cam>.<label>` (stream EVENTS).

One step: load the state and its revision; advance it through the keyframes that are newer than it (a keyframe a
slower replica finishes after a later one was tracked is left out: its detections were published, tracking goes
on without it); write it back compare-and-set, with the step's events in its `outbox`; publish the events left in
the outbox loaded (a replica died between writing and publishing) and the step's own, each with Msg-Id
`<cam>:<object id>:<seq>`; then clear the outbox. A lost compare-and-set (another replica wrote first) starts the
step again from the newer state, so no object is started twice and none announced twice. Within a replica a lock
per camera keeps its own batches from contending.

The end timer (`expire_all`) runs the same step with no keyframe, for cameras that stopped sending any: their
objects still end after `end_after_s`.
"""

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from functools import partial

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from spectare.core.bus import bucket_keys, open_bucket
from spectare.core.config import Settings
from spectare.core.errors import SchemaError
from spectare.core.logs import LogOnce
from spectare.schemas import Names, ObjectEvent
from spectare.schemas.msgids import event_id
from spectare.schemas.tracks import TrackerState

from .tracker import Frame, Rules, advance, expire, newer

log = logging.getLogger(__name__)

STEP_ATTEMPTS = 8
Publish = Callable[[str, bytes, str], Awaitable[None]]


class TrackStore:
    """The `tracks` bucket: one TrackerState per camera, written compare-and-set."""

    def __init__(self, js: JetStreamContext, kv: KeyValue, bucket: str) -> None:
        self.js = js
        self.kv = kv
        self.bucket = bucket
        self.log_once = LogOnce(log)

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings) -> "TrackStore":
        bucket = settings.names.tracks_bucket
        return cls(js, await open_bucket(js, settings, bucket), bucket)

    async def load(self, camera: str) -> tuple[TrackerState, int | None]:
        """The camera's state (empty when there is none) and the entry's revision (None: no entry)."""
        try:
            entry = await self.kv.get(camera)
        except KeyNotFoundError:
            return TrackerState(camera=camera, time=0.0), None
        try:
            state = TrackerState.decode(entry.value or b"")
        except SchemaError as exc:
            self.log_once.warning(f"state:{camera}", "camera %s: tracker state unreadable (%s); starting afresh",
                                  camera, exc)
            return TrackerState(camera=camera, time=0.0), entry.revision
        if state.camera != camera:
            return TrackerState(camera=camera, time=0.0), entry.revision
        return state, entry.revision

    async def save(self, state: TrackerState, revision: int | None) -> int:
        """Write `state` if the entry is still at `revision`; KeyWrongLastSequenceError when it moved on."""
        if revision is None:
            return await self.kv.create(state.camera, state.encode())
        return await self.kv.update(state.camera, state.encode(), last=revision)

    async def cameras(self) -> list[str]:
        return await bucket_keys(self.js, self.bucket)


class Tracking:
    """Steps cameras' tracker states and publishes their events (see the module docstring)."""

    def __init__(self, store: TrackStore, names: Names, publish: Publish) -> None:
        self.store = store
        self.names = names
        self.publish = publish
        self.locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.late = 0  # keyframes left out: a later one of the camera was tracked first
        self.contended = 0  # steps started again after another replica wrote first

    async def track(self, camera: str, frames: list[Frame], rules: Rules) -> None:
        """Advance the camera's state through `frames` (any order) and publish what they raise."""
        frames = sorted(frames, key=lambda f: (f.time, f.seq))

        def step(state: TrackerState) -> tuple[TrackerState, list[ObjectEvent]]:
            events: list[ObjectEvent] = []
            for frame in frames:
                if newer(frame, state):
                    state, raised = advance(state, frame, rules)
                    events += raised
                else:
                    self.late += 1
            return state.model_copy(update={"outbox": tuple(events)}), events

        await self._step(camera, step)

    async def expire_all(self, now: float, rules_of: Callable[[str], Rules]) -> None:
        """The end timer: end the objects of every camera that sent no keyframe for its `end_after_s`."""
        for camera in await self.store.cameras():
            state, _ = await self.store.load(camera)
            rules = rules_of(camera)
            if state.objects and expire(state, now, rules)[1]:
                await self._step(camera, partial(expire, now=now, rules=rules))

    async def _step(self, camera: str, step: Callable[[TrackerState], tuple[TrackerState, list[ObjectEvent]]]) -> None:
        async with self.locks[camera]:
            for _ in range(STEP_ATTEMPTS):
                state, revision = await self.store.load(camera)
                left = list(state.outbox)  # a replica wrote these and may have died before sending them
                after, events = step(state)
                if after is state or (not events and not left and after == state):
                    return
                try:
                    revision = await self.store.save(after, revision)
                except KeyWrongLastSequenceError:
                    self.contended += 1
                    continue
                for event in left + events:
                    await self.publish(self.names.events(camera, event.label), event.encode(),
                                       event_id(camera, event.object_id, event.seq))
                if events:
                    try:  # sent: the next step need not send them again
                        await self.store.save(after.model_copy(update={"outbox": ()}), revision)
                    except KeyWrongLastSequenceError:
                        pass  # a newer step replaced the outbox already
                return
            log.warning("camera %s: tracker state not saved after %d contended attempts; its keyframes are "
                        "tracked again on redelivery", camera, STEP_ATTEMPTS)
            raise RuntimeError(f"tracker state of {camera} contended")
