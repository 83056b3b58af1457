"""Path and query parameters that several routers take: the camera name, times, a time range."""

import time
from typing import Annotated

from fastapi import Path, Query

from spectare.core.errors import SpectareError

from .models import NAME_PATTERN
from .rules import time_range

CamName = Annotated[str, Path(pattern=NAME_PATTERN, description="camera name")]
TimeParam = Annotated[str | None, Query(max_length=100, description="Unix seconds, ISO 8601, `2h` (ago), "
                                                                    "`today 08:30`, `now`")]


def span(start: str | None, end: str | None, default_span_s: float,
         max_span_s: float | None = None) -> tuple[float, float]:
    """start..end as Unix seconds (default: the last default_span_s; 0: both are needed), at most max_span_s."""
    if default_span_s == 0 and (start is None or end is None):
        raise SpectareError("give both start and end")
    return time_range(start, end, time.time(), default_span_s, max_span_s)
