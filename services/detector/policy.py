"""Per-camera detection policy, pure: which keyframes get the model, which of its findings are reported,
and the ids that make a re-run of the same keyframe publish nothing twice.

A camera's registry entry may set its own labels, minimum score and motion threshold; whatever it
leaves unset (None) falls back to the detector's settings.
"""

from dataclasses import dataclass

from spectare.schemas import CameraConfig, detection_id

from .models import Found
from .settings import DetectorSettings


@dataclass(frozen=True, slots=True)
class CameraPolicy:
    detect: bool
    labels: frozenset[str] | None  # None: every label the model knows
    min_score: float
    motion_gate: bool
    motion_threshold: float


def camera_policy(config: CameraConfig, defaults: DetectorSettings) -> CameraPolicy:
    labels = config.labels if config.labels is not None else defaults.labels
    return CameraPolicy(
        detect=config.detect,
        labels=frozenset(labels) if labels else None,
        min_score=config.min_score if config.min_score is not None else defaults.min_score,
        motion_gate=config.motion_gate,
        motion_threshold=config.motion_threshold if config.motion_threshold is not None else defaults.motion_threshold,
    )


def reported(found: list[Found], policy: CameraPolicy) -> list[Found]:
    """The findings a camera reports, best first (ties broken by label and box, so a re-run orders alike)."""
    kept = [f for f in found if f.score >= policy.min_score and (policy.labels is None or f.label in policy.labels)]
    return sorted(kept, key=lambda f: (-f.score, f.label, f.box))


def detection_msg_id(camera: str, session: str, seq: int, index: int) -> str:
    """`Nats-Msg-Id` of the index-th reported finding of keyframe (session, seq) of a camera (format:
    `spectare.schemas.msgids.detection_id`); the same index travels as the Detection's `index` field."""
    return detection_id(camera, session, seq, index)
