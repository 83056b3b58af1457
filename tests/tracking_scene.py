"""A scripted street camera with known ground truth, for the tracker's end-to-end tests: real photos of people and
a bus (assets/images, from `make setup`) pasted onto a real street (the median of the demo footage, which no
passer-by survives) and moved at keyframe-to-keyframe displacements of a one-keyframe-a-second camera.

Cast (positions are the box's top left corner in 0..1 of the picture, per keyframe k):
- `bus`: parked bottom right for the whole run: one `new`, one stationary `update`, then silence;
- `walker`: enters from the left while the bus is parked, crosses the frame about a body width a second, leaves;
- `crosser`: then walks down the middle through the zone `door` and out of the picture;
- `masked`: stands inside the mask `kiosk` the whole time: never reported.
"""

from dataclasses import dataclass
from functools import cache

import av
import cv2
import numpy as np

from spectare.core.config import ASSETS_DIR

WIDTH, HEIGHT = 960, 640
KEYFRAMES = 34
DOOR = ((0.35, 0.55), (0.65, 0.55), (0.65, 0.8), (0.35, 0.8))  # a zone in the middle, by the bottom centre
KIOSK = ((0.0, 0.0), (0.25, 0.0), (0.25, 0.4), (0.0, 0.4))  # a mask top left


@dataclass(frozen=True)
class Actor:
    name: str
    photo: str
    crop: tuple[float, float, float, float]  # of the photo, normalised x1, y1, x2, y2
    height: float  # on the picture, share of its height
    first: int  # first keyframe on the picture
    last: int  # last keyframe on the picture
    start: tuple[float, float]  # top left at `first`
    step: tuple[float, float]  # per keyframe

    def where(self, k: int) -> tuple[float, float] | None:
        if not self.first <= k <= self.last:
            return None
        n = k - self.first
        return self.start[0] + self.step[0] * n, self.start[1] + self.step[1] * n


CAST = (  # pasted in this order: later ones in front
    Actor("masked", "bus.jpg", (0.25, 0.36, 0.45, 0.79), 0.3, 0, KEYFRAMES - 1, (0.08, 0.05), (0.003, 0.0)),
    Actor("bus", "bus.jpg", (0.44, 0.16, 0.85, 0.73), 0.45, 0, KEYFRAMES - 1, (0.62, 0.5), (0.0, 0.0)),
    Actor("walker", "bus.jpg", (0.05, 0.35, 0.285, 0.855), 0.32, 3, 13, (0.0, 0.2), (0.09, 0.0)),
    Actor("crosser", "zidane.jpg", (0.57, 0.0, 0.89, 1.0), 0.34, 12, 24, (0.38, 0.0), (0.0, 0.045)),
)
LEAVING = ("walker", "crosser")  # on the picture for a while, then gone: each ends once
STAYING = ("bus",)


@cache
def background() -> np.ndarray:
    """The demo footage's median picture (a street with nobody on it), scaled to the camera's size."""
    path = ASSETS_DIR / "demo" / "market-street.mp4"
    assert path.is_file(), f"{path} is missing: run `make setup`"
    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(container.streams.video[0])):
            if i % 30 == 0:
                frames.append(frame.to_ndarray(format="bgr24"))
    median = np.median(np.stack(frames), axis=0).astype(np.uint8)
    return cv2.resize(median, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)


@cache
def sprite(actor: Actor) -> np.ndarray:
    path = ASSETS_DIR / "images" / actor.photo
    assert path.is_file(), f"{path} is missing: run `make setup`"
    image = cv2.imread(str(path))
    h, w = image.shape[:2]
    x1, y1, x2, y2 = actor.crop
    part = image[round(y1 * h):round(y2 * h), round(x1 * w):round(x2 * w)]
    height = round(actor.height * HEIGHT)
    width = round(part.shape[1] * height / part.shape[0])
    return cv2.resize(part, (width, height), interpolation=cv2.INTER_AREA)


def picture(k: int) -> np.ndarray:
    """Keyframe k of the scene (BGR, WIDTH x HEIGHT)."""
    image = background().copy()
    for actor in CAST:
        where = actor.where(k)
        if where is None:
            continue
        part = sprite(actor)
        x, y = round(where[0] * WIDTH), round(where[1] * HEIGHT)
        x1, y1, x2, y2 = max(x, 0), max(y, 0), min(x + part.shape[1], WIDTH), min(y + part.shape[0], HEIGHT)
        if x2 > x1 and y2 > y1:
            image[y1:y2, x1:x2] = part[y1 - y:y2 - y, x1 - x:x2 - x]
    return image


def actor_at(box: tuple[float, float, float, float], k: int) -> str | None:
    """Which actor a box on keyframe k is: the one whose pasted picture it overlaps most (None: none)."""
    best, best_overlap = None, 0.2
    for actor in CAST:
        where = actor.where(k)
        if where is None:
            continue
        part = sprite(actor)
        x1, y1 = where
        x2, y2 = x1 + part.shape[1] / WIDTH, y1 + part.shape[0] / HEIGHT
        inter = max(0.0, min(x2, box[2]) - max(x1, box[0])) * max(0.0, min(y2, box[3]) - max(y1, box[1]))
        union = (x2 - x1) * (y2 - y1) + (box[2] - box[0]) * (box[3] - box[1]) - inter
        if inter / union > best_overlap:
            best, best_overlap = actor.name, inter / union
    return best
