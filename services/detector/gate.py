"""The motion gate's decisions, pure: does a keyframe differ enough from the camera's previous one to be
worth running the model on?

Both keyframes are reduced to a small grey picture (`THUMB_WIDTH` pixels wide, area-averaged, see
`spectare.media.frames.thumbnail`); the share of its pixels whose grey level moved by more than
`PIXEL_DELTA` is the keyframe's motion. A camera's first keyframe, one after its picture size changed, and one whose
camera has the gate switched off always pass. The previous picture is shared by all detector replicas
(see `motion.MotionStore`), so which replica gets which keyframe does not matter.
"""

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from spectare.schemas import MotionState

THUMB_WIDTH = 160  # a person 1/20 of a 1080p frame wide still covers dozens of these pixels
PIXEL_DELTA = 20  # grey levels: above compression noise and slow light changes of area-averaged pixels


class Verdict(StrEnum):
    FIRST = "first"  # nothing to compare with
    RESIZED = "resized"  # the camera's picture size changed
    MOTION = "motion"
    STILL = "still"
    OFF = "off"  # gate switched off for the camera

    @property
    def passes(self) -> bool:
        return self is not Verdict.STILL


@dataclass(frozen=True, slots=True)
class GateResult:
    verdict: Verdict
    share: float | None  # changed share of the picture, when compared


def changed_share(previous: np.ndarray, current: np.ndarray, pixel_delta: int = PIXEL_DELTA) -> float:
    """Share (0..1) of pixels whose grey level differs by more than pixel_delta; pictures of equal shape."""
    if previous.shape != current.shape:
        raise ValueError(f"pictures differ in shape: {previous.shape} vs {current.shape}")
    diff = np.abs(previous.astype(np.int16) - current.astype(np.int16))
    return float(np.count_nonzero(diff > pixel_delta)) / diff.size


def judge(previous: MotionState | None, current: np.ndarray | None, threshold: float) -> GateResult:
    """The gate's verdict on a keyframe whose grey thumbnail is `current` (None: the gate is off)."""
    if current is None:
        return GateResult(Verdict.OFF, None)
    if previous is None:
        return GateResult(Verdict.FIRST, None)
    if (previous.height, previous.width) != current.shape:
        return GateResult(Verdict.RESIZED, None)
    before = np.frombuffer(previous.pixels, dtype=np.uint8).reshape(previous.height, previous.width)
    share = changed_share(before, current)
    return GateResult(Verdict.MOTION if share >= threshold else Verdict.STILL, share)


def newer(state: MotionState, than: MotionState | None) -> bool:
    """Whether `state` is of a later keyframe than `than` (replicas may finish out of order)."""
    return than is None or (state.wall_time, state.seq) > (than.wall_time, than.seq)


def hide(thumb: np.ndarray, polygons: list[tuple[tuple[float, float], ...]]) -> np.ndarray:
    """The thumbnail with the polygons (normalised corners) painted black: motion there never passes the gate."""
    if not polygons:
        return thumb
    height, width = thumb.shape[:2]
    corners = [np.array([(round(x * (width - 1)), round(y * (height - 1))) for x, y in p], dtype=np.int32)
               for p in polygons]
    hidden = thumb.copy()
    cv2.fillPoly(hidden, corners, 0)
    return hidden
