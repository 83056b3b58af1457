"""A camera's timeline without I/O: the range a request covers, the indexer SQL that finds its recorded spans and
gaps, and the answer shaped from the rows (`GET /cameras/byname/{name}/timeline`, in `footage.py`).

A span is a run of chunks, each starting within `join_s` of the furthest end before it: the page passes its
seconds per pixel, so a month drawn on 1920 px comes back as a few hundred spans, not 260 000 chunks. The merge
is a gaps-and-islands query inside DuckDB (a running max of the ends, a running count of the breaks), so the
chunks never leave the indexer. Gaps are the indexer's `gaps` rows (what the segmenter announced, with its
reason); gaps shorter than `join_s` are left out, as they would be narrower than a pixel.
"""

import math
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from spectare.core.errors import SpectareError

from .rules import parse_when

DEFAULT_RANGE_S = 86_400.0  # without `start`: the day before `end`
MAX_RANGE_S = 400 * 86_400.0  # a year and some: more than any retention the page scrolls through
MAX_JOIN_S = 86_400.0
MAX_GAPS = 1000  # each carries its reason (up to 200 characters): 1000 keep the indexer's answer well under 1 MB
_CAMERA = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


class TimelineRangeError(SpectareError):
    """A timeline request whose range or join cannot be used: answered 422."""


class Span(BaseModel):
    start: float = Field(description="Unix seconds (at least the range's start)")
    end: float = Field(description="Unix seconds (at most the range's end)")


class TimelineGap(BaseModel):
    start: float = Field(description="Unix seconds when footage stopped (may be before the range's start)")
    end: float | None = Field(description="Unix seconds when it came back; null while the camera is still away")
    reason: str = Field(description="why, as the segmenter recorded it (e.g. the camera's session ended)")


class Timeline(BaseModel):
    """What a camera recorded in start..end: spans of footage and the gaps between them, in time order."""

    camera: str
    start: float
    end: float
    spans: list[Span] = Field(description="runs of chunks, each starting within join_s of the one before; clipped "
                                          "to start..end")
    gaps: list[TimelineGap] = Field(description="gaps recorded by the segmenter, at least join_s long (open ones "
                                                "always)")
    truncated: bool = Field(description="more spans or gaps than one answer holds: the first ones are given; ask "
                                        "again with a larger join_s or from the last span's end")


def timeline_range(start: str | None, end: str | None, now: float, join_s: float) -> tuple[float, float]:
    """start..end of a timeline request (end defaults to now, start to a day before end), checked."""
    try:
        t1 = parse_when(end, now, "end") if end is not None else now
        t0 = parse_when(start, now, "start") if start is not None else t1 - DEFAULT_RANGE_S
    except SpectareError as exc:
        raise TimelineRangeError(str(exc)) from None
    if not (math.isfinite(t0) and math.isfinite(t1)) or t1 <= t0:
        raise TimelineRangeError("end must be after start")
    if t1 - t0 > MAX_RANGE_S:
        raise TimelineRangeError(f"the range is {(t1 - t0) / 86_400:.0f} days long; a timeline covers at most "
                                 f"{MAX_RANGE_S / 86_400:.0f} days")
    if not (math.isfinite(join_s) and 0 <= join_s <= MAX_JOIN_S):
        raise TimelineRangeError(f"join_s must be between 0 and {MAX_JOIN_S:.0f} seconds")
    return t0, t1


def _camera(camera: str) -> str:
    if not _CAMERA.fullmatch(camera):  # inlined into SQL: only a valid name may be
        raise ValueError(f"invalid camera name {camera!r}")
    return camera


def spans_sql(camera: str, start: float, end: float, join_s: float, limit: int) -> str:
    """Indexer SQL: (start, end) of each span of the camera's chunks overlapping start..end, clipped to it, in time
    order; at most limit + 1 rows (one more says there are more). A chunk opens a new span when it starts more than
    join_s after the furthest end of the chunks before it (a running max, so overlapping chunks never split one)."""
    return (
        f"WITH c AS (SELECT start_time AS s, end_time AS e FROM chunks WHERE camera = '{_camera(camera)}' "
        f"AND end_time > {start!r} AND start_time < {end!r}), "
        "r AS (SELECT s, e, max(e) OVER (ORDER BY s, e ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach "
        "FROM c), "
        f"i AS (SELECT s, e, sum(CASE WHEN reach IS NULL OR s > reach + {join_s!r} THEN 1 ELSE 0 END) "
        "OVER (ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS island FROM r) "
        f"SELECT greatest(min(s), {start!r}), least(max(e), {end!r}) FROM i GROUP BY island ORDER BY island "
        f"LIMIT {limit + 1}"
    )


def gaps_sql(camera: str, start: float, end: float, join_s: float, limit: int) -> str:
    """Indexer SQL: (start, end or NULL, reason) of the camera's gaps overlapping start..end that are open or at
    least join_s long, in time order; at most limit + 1 rows."""
    return (
        f"SELECT start_time, end_time, reason FROM gaps WHERE camera = '{_camera(camera)}' AND start_time < {end!r} "
        f"AND (end_time IS NULL OR (end_time > {start!r} AND end_time - start_time >= {join_s!r})) "
        f"ORDER BY start_time LIMIT {limit + 1}"
    )


def timeline_answer(camera: str, start: float, end: float, span_rows: Sequence[Sequence[Any]],
                    gap_rows: Sequence[Sequence[Any]], max_spans: int, max_gaps: int) -> dict[str, Any]:
    """The timeline answer (`Timeline`'s shape) from `spans_sql`'s and `gaps_sql`'s rows."""
    spans = [{"start": float(s), "end": float(e)} for s, e in span_rows[:max_spans]]
    gaps = [{"start": float(s), "end": None if e is None else float(e), "reason": str(reason)}
            for s, e, reason in gap_rows[:max_gaps]]
    return {"camera": camera, "start": start, "end": end, "spans": spans, "gaps": gaps,
            "truncated": len(span_rows) > max_spans or len(gap_rows) > max_gaps}
