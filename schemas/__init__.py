"""The one definition of every message, subject, stream and bucket Spectare uses."""

from .messages import (
    ApiToken,
    AudioTrack,
    CameraConfig,
    Detection,
    Gap,
    Keyframe,
    Message,
    MotionState,
    Packet,
    PacketGroup,
    Segment,
    StreamInfo,
    VideoTrack,
    decode_one_of,
)
from .names import Names, ParsedSubject, SubjectKind, camera_name, label_token

__all__ = [
    "ApiToken",
    "AudioTrack",
    "CameraConfig",
    "Detection",
    "Gap",
    "Keyframe",
    "Message",
    "MotionState",
    "Names",
    "Packet",
    "PacketGroup",
    "ParsedSubject",
    "Segment",
    "StreamInfo",
    "SubjectKind",
    "VideoTrack",
    "camera_name",
    "decode_one_of",
    "label_token",
]
