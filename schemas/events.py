"""Tracked-object events: one alert per object, not one per keyframe.

The detector's tracker follows each object across keyframes and tells its life on `events.<cam>.<label>`
(stream EVENTS): `new` once the object was seen on enough keyframes to be real, `update` when something worth
telling changed (a better snapshot, a zone entered or left, it became stationary or moved again), `end` once it
was unseen for the camera's `end_after_s`. A parked car is one `new`, one `update` (stationary) and nothing more
until it moves or leaves. `seq` counts one object's messages from 0 (its `new`), so its Msg-Id
`<cam>:<object_id>:<seq>` (`schemas.msgids.event_id`) never repeats, whichever detector replica publishes.
"""

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from .messages import Camera, Message, NonNegInt, Unit
from .names import label_token, object_token

EventType = Literal["new", "update", "end"]
EVENT_TYPES: tuple[EventType, ...] = ("new", "update", "end")
Change = Literal["snapshot", "zone_entered", "zone_left", "stationary", "moving"]
CHANGES: tuple[Change, ...] = ("snapshot", "zone_entered", "zone_left", "stationary", "moving")


class ObjectEvent(Message):
    """One message of a tracked object's life (see the module docstring)."""

    KIND: ClassVar[str] = "object_event"
    type: EventType
    camera: Camera
    object_id: str = Field(description="the tracked object, unique per camera (a subject-safe token)")
    seq: NonNegInt = Field(description="this object's message number: 0 is its `new`")
    label: str
    time: float = Field(description="wall time this message is about: the keyframe's, or when the end was decided")
    first_seen: float = Field(description="wall time of the first keyframe the object was on")
    last_seen: float = Field(description="wall time of the last keyframe the object was on")
    top_score: Unit
    box: tuple[Unit, Unit, Unit, Unit] = Field(description="last box seen: x1, y1, x2, y2 normalised to 0..1")
    snapshot_key: str | None = Field(default=None, description="S3 key of the object's best snapshot so far")
    zones: tuple[str, ...] = Field(default=(), description="zones the object is in now")
    entered_zones: tuple[str, ...] = Field(default=(), description="every zone the object has entered, in order")
    stationary: bool = Field(default=False, description="the object has not moved for the camera's stationary_after_s")
    changes: tuple[Change, ...] = Field(default=(), description="what an `update` tells (empty for new and end)")
    session: str = Field(description="camera session of the last keyframe the object was on")
    keyframe_seq: NonNegInt = Field(description="seq of that keyframe")

    @field_validator("label")
    @classmethod
    def _label_token(cls, value: str) -> str:
        return label_token(value)

    @field_validator("object_id")
    @classmethod
    def _object_token(cls, value: str) -> str:
        return object_token(value)

    @field_validator("zones", "entered_zones")
    @classmethod
    def _zone_tokens(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(label_token(zone) for zone in value)
