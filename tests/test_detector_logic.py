"""The detector's pure decisions: the motion gate, per-camera policy, ids and keys."""

import numpy as np
import pytest

from spectare.detector.gate import PIXEL_DELTA, Verdict, changed_share, judge, newer
from spectare.detector.models import Found
from spectare.detector.policy import camera_policy, detection_msg_id, reported
from spectare.detector.settings import DetectorSettings
from spectare.schemas import CameraConfig, MotionState
from spectare.schemas.keys import snapshot_key

T0 = 1795845752.345678


def state(pixels: np.ndarray, seq: int = 0, wall_time: float = T0, camera: str = "c") -> MotionState:
    return MotionState(camera=camera, session="s", seq=seq, wall_time=wall_time, width=pixels.shape[1],
                       height=pixels.shape[0], pixels=pixels.tobytes())


GREY = np.full((90, 160), 100, np.uint8)


def with_box(value: int, rows: slice, cols: slice) -> np.ndarray:
    picture = GREY.copy()
    picture[rows, cols] = value
    return picture


@pytest.mark.parametrize(
    ("previous", "current", "threshold", "verdict"),
    [
        (None, GREY, 0.002, Verdict.FIRST),
        (GREY, GREY, 0.002, Verdict.STILL),
        (GREY, GREY + PIXEL_DELTA, 0.002, Verdict.STILL),  # a change within the noise allowance everywhere
        (GREY, GREY + PIXEL_DELTA + 1, 0.002, Verdict.MOTION),  # the whole picture changed
        (GREY, with_box(200, slice(10, 20), slice(10, 20)), 0.002, Verdict.MOTION),  # 100 px = 0.7 %
        (GREY, with_box(200, slice(10, 12), slice(10, 12)), 0.002, Verdict.STILL),  # 4 px = 0.03 %
        (GREY, with_box(200, slice(10, 12), slice(10, 12)), 0.0002, Verdict.MOTION),  # a more sensitive camera
        (GREY, np.full((45, 80), 100, np.uint8), 0.002, Verdict.RESIZED),
        (GREY, None, 0.002, Verdict.OFF),
    ],
)
def test_gate_verdicts(previous, current, threshold, verdict):
    result = judge(None if previous is None else state(previous), current, threshold)
    assert result.verdict is verdict
    assert result.verdict.passes is (verdict is not Verdict.STILL)


def test_changed_share_counts_pixels_beyond_the_delta():
    changed = with_box(0, slice(0, 9), slice(0, 160))  # 9 of 90 rows went dark
    assert changed_share(GREY, changed) == pytest.approx(0.1)
    assert changed_share(changed, GREY) == pytest.approx(0.1)  # symmetric
    with pytest.raises(ValueError, match="shape"):
        changed_share(GREY, GREY[:10])


@pytest.mark.parametrize(
    ("candidate", "stored", "is_newer"),
    [
        ((T0 + 1, 30), None, True),
        ((T0 + 1, 30), (T0, 15), True),
        ((T0, 15), (T0 + 1, 30), False),
        ((T0, 15), (T0, 15), False),  # the same keyframe again
        ((T0, 16), (T0, 15), True),
    ],
)
def test_newer_orders_by_time_then_seq(candidate, stored, is_newer):
    before = None if stored is None else state(GREY, seq=stored[1], wall_time=stored[0])
    assert newer(state(GREY, seq=candidate[1], wall_time=candidate[0]), before) is is_newer


def config(**fields) -> CameraConfig:
    return CameraConfig(name="porch", url="rtsp://cam/1", **fields)


DEFAULTS = DetectorSettings(min_score=0.5, labels=("person", "car"), motion_threshold=0.002)


@pytest.mark.parametrize(
    ("fields", "labels", "min_score", "gate", "threshold"),
    [
        ({}, {"person", "car"}, 0.5, True, 0.002),
        ({"labels": ("dog",), "min_score": 0.8}, {"dog"}, 0.8, True, 0.002),
        ({"labels": ()}, None, 0.5, True, 0.002),  # empty list: every label
        ({"motion_gate": False, "motion_threshold": 0.05}, {"person", "car"}, 0.5, False, 0.05),
    ],
)
def test_camera_policy_falls_back_to_detector_defaults(fields, labels, min_score, gate, threshold):
    policy = camera_policy(config(**fields), DEFAULTS)
    assert policy.labels == (None if labels is None else frozenset(labels))
    assert (policy.min_score, policy.motion_gate, policy.motion_threshold) == (min_score, gate, threshold)


def found(label: str, score: float, x: float = 0.1) -> Found:
    return Found(class_id=0, label=label, score=score, box=(x, 0.1, x + 0.2, 0.5))


def test_reported_filters_by_label_and_score_best_first():
    policy = camera_policy(config(labels=("person", "car"), min_score=0.5), DEFAULTS)
    findings = [found("person", 0.6), found("dog", 0.99), found("car", 0.9), found("person", 0.4),
                found("person", 0.6, x=0.05)]
    assert reported(findings, policy) == [found("car", 0.9), found("person", 0.6, x=0.05), found("person", 0.6)]
    assert reported(list(reversed(findings)), policy) == reported(findings, policy)  # order-independent


def test_ids_and_snapshot_keys_are_deterministic_and_distinct():
    assert detection_msg_id("porch", "a1-0", 30, 2) == "porch:a1-0:30:2"
    key = snapshot_key("porch", T0, "a1-0", 30)
    assert key == "snapshots/porch/2026/11/28/06/20261128T060232.345Z-a1-0-30.jpg"
    assert snapshot_key("porch", T0, "a1-0", 30) == key
    assert snapshot_key("porch", T0, "a1-0", 31) != key
