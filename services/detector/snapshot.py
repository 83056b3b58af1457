"""Snapshot JPEGs: the keyframe with every reported box drawn and labelled, scaled to a sensible width."""

import cv2
import numpy as np

from .models import Found

# BGR colours, one per label (stable across runs: chosen by a hash of the label).
_PALETTE = ((56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
            (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0))


def _colour(label: str) -> tuple[int, int, int]:
    return _PALETTE[sum(label.encode()) % len(_PALETTE)]


def render(image: np.ndarray, found: list[Found], max_width: int, quality: int) -> bytes:
    """JPEG bytes of `image` (BGR) with `found` drawn; wider images are scaled down to max_width."""
    height, width = image.shape[:2]
    if width > max_width:
        height, width = round(height * max_width / width), max_width
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    else:
        image = image.copy()
    thickness = max(1, round(width / 400))
    scale = max(0.4, width / 1600)
    for item in found:
        x1, y1, x2, y2 = (round(v * s) for v, s in zip(item.box, (width, height, width, height), strict=True))
        colour = _colour(item.label)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
        text = f"{item.label} {item.score:.2f}"
        (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = y1 - th - baseline if y1 - th - baseline >= 0 else y1
        cv2.rectangle(image, (x1, top), (x1 + tw, top + th + baseline), colour, cv2.FILLED)
        cv2.putText(image, text, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                    cv2.LINE_AA)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return jpeg.tobytes()
