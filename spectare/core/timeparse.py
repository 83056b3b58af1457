"""Durations and moments as users type them."""

import re
import time
from datetime import UTC, datetime

from spectare.core.errors import SpectareError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([smhdw]))", re.I)


def parse_duration(text: str) -> float:
    """'90s', '15m', '2h', '1h30m', '3d', '1w' -> seconds."""
    cleaned = text.strip().replace(" ", "")
    parts = _DURATION.findall(cleaned)
    if not cleaned or not parts or "".join(n + u for n, u in parts).lower() != cleaned.lower():
        raise SpectareError(f"cannot read {text!r} as a duration: use e.g. 90s, 15m, 2h, 1h30m, 3d")
    return sum(float(n) * _UNITS[u.lower()] for n, u in parts)


def since(text: str, now: float | None = None) -> float:
    """'2h' -> the Unix time two hours ago."""
    return (time.time() if now is None else now) - parse_duration(text)


def iso(ts: float) -> str:
    """Unix seconds -> '2026-11-27T05:49:12.345Z'."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
