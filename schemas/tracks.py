"""What the detector's tracker remembers of a camera: the `tracks` KV bucket, keyed by camera.

Every detector replica advances the same state (compare-and-set on the entry's revision), so a camera's
keyframes are tracked in order whichever replica runs them, and a restart or rebalance continues each object
under its id instead of starting it over as new. `outbox` holds the events of the step that wrote the state
until they are known to be published: a replica that crashed in between leaves them for the next step to send
(their Msg-Ids make a second send a no-op).
"""

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .events import ObjectEvent
from .messages import Camera, Message, NonNegInt, Unit


class TrackedObject(BaseModel):
    """One object the tracker follows on a camera."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    object_id: str
    label: str
    first_seen: float
    last_seen: float
    hits: NonNegInt = Field(description="keyframes the model found it on")
    announced: bool = Field(default=False, description="its `new` event was sent")
    next_seq: NonNegInt = Field(default=0, description="seq of its next event")
    top_score: Unit
    snapshot_score: Unit = Field(default=0.0, description="its score on the keyframe of `snapshot_key`")
    snapshot_key: str | None = None
    box: tuple[Unit, Unit, Unit, Unit]
    velocity: tuple[float, float] = Field(default=(0.0, 0.0), description="box centre's motion, per second")
    zones: tuple[str, ...] = ()
    entered_zones: tuple[str, ...] = ()
    stationary: bool = False
    still_since: float = Field(description="since when its centre stayed near `anchor`")
    anchor: tuple[float, float] = Field(description="box centre where it was when it last moved")
    session: str
    keyframe_seq: NonNegInt


class TrackerState(Message):
    """A camera's tracked objects after the last keyframe tracked (`time`, `session`, `seq`)."""

    KIND: ClassVar[str] = "tracker_state"
    camera: Camera
    time: float = Field(description="wall time of the last keyframe tracked (0: none yet)")
    session: str = ""
    seq: NonNegInt = 0
    objects: tuple[TrackedObject, ...] = ()
    outbox: tuple[ObjectEvent, ...] = Field(default=(), description="events of the last step, maybe unsent")
