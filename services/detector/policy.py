"""Per-camera detection policy, pure: which keyframes get the model, which of its findings are reported (masks
included), the tracker's rules, and the ids that make a re-run of the same keyframe publish nothing twice.

A camera's registry entry may set its own labels, minimum score and motion threshold; whatever it
leaves unset (None) falls back to the detector's settings.
"""

from dataclasses import dataclass

from spectare.schemas import CameraConfig, detection_id
from spectare.schemas.zones import Mask

from .models import Found
from .settings import DetectorSettings
from .tracker import Rules, foot


@dataclass(frozen=True, slots=True)
class CameraPolicy:
    detect: bool
    labels: frozenset[str] | None  # None: every label the model knows
    min_score: float
    motion_gate: bool
    motion_threshold: float
    rules: Rules  # the tracker's
    masks: tuple[Mask, ...] = ()


def camera_policy(config: CameraConfig, defaults: DetectorSettings) -> CameraPolicy:
    labels = config.labels if config.labels is not None else defaults.labels
    return CameraPolicy(
        detect=config.detect,
        labels=frozenset(labels) if labels else None,
        min_score=config.min_score if config.min_score is not None else defaults.min_score,
        motion_gate=config.motion_gate,
        motion_threshold=config.motion_threshold if config.motion_threshold is not None else defaults.motion_threshold,
        rules=tracking_rules(config, defaults),
        masks=config.masks,
    )


def tracking_rules(config: CameraConfig | None, defaults: DetectorSettings) -> Rules:
    """The tracker's rules for a camera (None: one no longer registered, whose objects still end)."""

    def pick(own: float | None, default: float) -> float:
        return own if own is not None else default

    return Rules(
        min_hits=int(pick(config.min_hits if config else None, defaults.min_hits)),
        end_after_s=pick(config.end_after_s if config else None, defaults.end_after_s),
        stationary_after_s=pick(config.stationary_after_s if config else None, defaults.stationary_after_s),
        max_jump=defaults.track_max_jump,
        snapshot_margin=defaults.snapshot_margin,
        zones=config.zones if config else (),
        required_zones=frozenset(config.required_zones) if config else frozenset(),
    )


def reported(found: list[Found], policy: CameraPolicy) -> list[Found]:
    """The findings a camera reports, best first (ties broken by label and box, so a re-run orders alike): scores
    and labels it wants, standing (box bottom centre) outside its masks."""
    kept = [f for f in found if f.score >= policy.min_score and (policy.labels is None or f.label in policy.labels)
            and not masked(f.box, policy.masks)]
    return sorted(kept, key=lambda f: (-f.score, f.label, f.box))


def masked(box: tuple[float, float, float, float], masks: tuple[Mask, ...]) -> bool:
    x, y = foot(box)
    return any(mask.contains(x, y) for mask in masks)


def detection_msg_id(camera: str, session: str, seq: int, index: int) -> str:
    """`Nats-Msg-Id` of the index-th reported finding of keyframe (session, seq) of a camera (format:
    `spectare.schemas.msgids.detection_id`); the same index travels as the Detection's `index` field."""
    return detection_id(camera, session, seq, index)
