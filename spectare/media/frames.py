"""Keyframes to pictures: decode one self-contained keyframe with PyAV (it carries its codec parameters),
and the two pictures the detector needs of it, a BGR array for the model and a small grey one for the
motion gate."""

import av
import numpy as np

from spectare.core.errors import SpectareError
from spectare.schemas import Keyframe


class UndecodableKeyframe(SpectareError):
    """A keyframe that does not decode: unknown codec, corrupt data."""


def decode_keyframe(keyframe: Keyframe) -> av.VideoFrame:
    try:
        codec = av.CodecContext.create(keyframe.codec, "r")
    except (av.FFmpegError, ValueError) as exc:
        raise UndecodableKeyframe(f"unknown codec {keyframe.codec!r} ({exc})") from None
    if not isinstance(codec, av.VideoCodecContext):
        raise UndecodableKeyframe(f"codec {keyframe.codec!r} is not a video codec")
    if keyframe.extradata:
        codec.extradata = keyframe.extradata
    try:
        frames = codec.decode(av.Packet(keyframe.data))
        frames += codec.decode(None)  # drain: a decoder may hold the frame back until it is flushed
    except av.FFmpegError as exc:
        raise UndecodableKeyframe(f"{keyframe.codec} keyframe does not decode ({exc})") from None
    if not frames:
        raise UndecodableKeyframe(f"{keyframe.codec} keyframe decoded to no picture")
    return frames[0]


def to_bgr(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="bgr24")


def thumbnail(frame: av.VideoFrame, width: int) -> np.ndarray:
    """A grey picture `width` pixels wide with the frame's aspect ratio (area-averaged, so sensor noise and
    compression artefacts mostly cancel out)."""
    height = max(1, round(width * frame.height / frame.width))
    small = frame.reformat(width=width, height=height, format="gray", interpolation="AREA")
    return small.to_ndarray()
