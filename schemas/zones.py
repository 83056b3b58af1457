"""Zones and masks of a camera: named polygons in coordinates normalised to 0..1 of the picture (x right, y down).

A zone tags the events of objects whose box's bottom centre (where a person stands, where a car touches the road)
lies in it; a mask drops the findings whose bottom centre lies in it, and with `motion` also hides its area from
the motion gate. Polygons are validated where they are made: at least 3 points, all inside the picture, no two
edges crossing, names as subject tokens and unique per camera. The geometry here is pure and small on purpose.
"""

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from spectare.core.errors import InvalidName

from .names import TOKEN_RULE, label_token

Point = tuple[float, float]  # x, y in 0..1 (checked by `polygon_problem`, which says which point is out)


def as_tuples(value: object) -> object:
    """JSON arrays (an API body) as the tuples messages keep: lists at any depth become tuples."""
    return tuple(as_tuples(v) for v in value) if isinstance(value, list | tuple) else value


Points = Annotated[tuple[tuple[float, float], ...], BeforeValidator(as_tuples)]
MAX_POINTS = 64


class Polygon(BaseModel):
    """A named polygon (see the module docstring)."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    name: str = Field(description="a token: a-z, 0-9, '_' or '-'")
    points: Points = Field(description="corners in order, x and y in 0..1 of the picture")

    @field_validator("name")
    @classmethod
    def _name_token(cls, value: str) -> str:
        try:
            return label_token(value)
        except InvalidName:
            raise ValueError(f"invalid name {value!r}: use {TOKEN_RULE}") from None

    @field_validator("points")
    @classmethod
    def _simple_polygon(cls, value: tuple[Point, ...]) -> tuple[Point, ...]:
        problem = polygon_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def contains(self, x: float, y: float) -> bool:
        return point_in_polygon(x, y, self.points)


class Zone(Polygon):
    """A zone: tags events of objects standing in it."""


class Mask(Polygon):
    """A mask: findings standing in it are dropped; with `motion`, motion in it does not wake the model."""

    motion: bool = Field(default=False, description="also ignore motion inside it for the motion gate")


def polygon_problem(points: tuple[Point, ...]) -> str | None:
    """Why `points` is not a usable polygon (None: it is)."""
    if len(points) < 3:
        return f"a polygon needs at least 3 points, got {len(points)}"
    if len(points) > MAX_POINTS:
        return f"a polygon may have at most {MAX_POINTS} points, got {len(points)}"
    if len(set(points)) != len(points):
        return "a polygon may not repeat a point"
    outside = [i for i, (x, y) in enumerate(points) if not (0 <= x <= 1 and 0 <= y <= 1)]
    if outside:
        x, y = points[outside[0]]
        return f"point {outside[0] + 1} ({x:g}, {y:g}) is outside the picture: coordinates are 0..1"
    crossing = self_crossing(points)
    if crossing:
        i, j = crossing
        return f"the polygon crosses itself: edge {i + 1} crosses edge {j + 1} (give the corners in order around it)"
    if abs(_area2(points)) < 1e-9:
        return "the polygon's points are all on one line"
    return None


def self_crossing(points: tuple[Point, ...]) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges (edge i runs from point i to point i+1) that touch or cross."""
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):  # neighbours share a corner
                continue
            if _segments_touch(*edges[i], *edges[j]):
                return i, j
    return None


def point_in_polygon(x: float, y: float, points: tuple[Point, ...]) -> bool:
    """Even-odd rule (ray to the right); a point on an edge may fall either side."""
    inside = False
    n = len(points)
    for i in range(n):
        (x1, y1), (x2, y2) = points[i], points[(i - 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def parse_polygon(text: str) -> tuple[str, tuple[Point, ...]]:
    """`name=x1,y1,x2,y2,...` -> (name, points); ValueError saying what is wrong."""
    name, sep, coords = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"{text!r}: write NAME=x1,y1,x2,y2,x3,y3 (coordinates 0..1 of the picture)")
    try:
        numbers = [float(v) for v in coords.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{text!r}: coordinates must be numbers, comma-separated") from None
    if len(numbers) % 2:
        raise ValueError(f"{text!r}: an odd number of coordinates; give x,y pairs")
    return name.strip(), tuple(zip(numbers[::2], numbers[1::2], strict=True))


def _area2(points: tuple[Point, ...]) -> float:
    return sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True))


def _orient(a: Point, b: Point, c: Point) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: Point, b: Point, c: Point) -> bool:
    """c (collinear with a-b) lies on the segment a-b."""
    return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(a[1], b[1])


def _segments_touch(a: Point, b: Point, c: Point, d: Point) -> bool:
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    if ((o1 > 0 and o2 < 0) or (o1 < 0 and o2 > 0)) and ((o3 > 0 and o4 < 0) or (o3 < 0 and o4 > 0)):
        return True
    return any(o == 0 and _on_segment(p, q, r) for o, p, q, r in
               ((o1, a, b, c), (o2, a, b, d), (o3, c, d, a), (o4, c, d, b)))
