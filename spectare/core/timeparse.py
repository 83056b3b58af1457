"""Durations and moments as users type them."""

import re
import time
from datetime import UTC, datetime, timedelta, tzinfo

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


TIME_FORMS = ("now, 2h or 2h ago, today 08:30, yesterday 14:00, 14:00 (today), 2026-11-27, 2026-11-27T14:00 "
              "(local time), 2026-11-27T14:00Z or +01:00")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?")


def parse_time(text: str, now: float | None = None, tz: tzinfo | None = None) -> float:
    """A moment as a user types it -> Unix seconds; SpectareError listing TIME_FORMS otherwise. Times without a
    zone are local (`tz`, default the system's zone); a duration (`2h`, `2h ago`) counts back from `now`."""
    now = time.time() if now is None else now
    cleaned = " ".join(text.strip().lower().split()) if isinstance(text, str) else ""
    try:
        return _parse_time(cleaned, now, tz)
    except (ValueError, OverflowError):
        raise SpectareError(f"cannot read {text!r} as a time: use {TIME_FORMS}") from None


def _parse_time(text: str, now: float, tz: tzinfo | None) -> float:
    if not text:
        raise ValueError("empty")
    if text == "now":
        return now
    ago = text.removesuffix(" ago").strip()
    if ago and ago[0].isdigit() and ago[-1] in _UNITS:
        try:
            return now - parse_duration(ago)
        except SpectareError:
            raise ValueError("not a duration") from None
    day, _, clock = text.partition(" ")
    if day in ("today", "yesterday"):
        today = datetime.fromtimestamp(now, tz).date()
        date = today - timedelta(days=1) if day == "yesterday" else today
        return _local(datetime.combine(date, _clock(clock) if clock else datetime.min.time()), tz)
    if _CLOCK.fullmatch(text):
        return _local(datetime.combine(datetime.fromtimestamp(now, tz).date(), _clock(text)), tz)
    moment = datetime.fromisoformat(text.upper().replace(" ", "T", 1) if len(text) > 10 else text)
    return moment.timestamp() if moment.tzinfo is not None else _local(moment, tz)


def _clock(text: str):
    match = _CLOCK.fullmatch(text)
    if not match:
        raise ValueError("not a time of day")
    hours, minutes, seconds = int(match[1]), int(match[2]), float(match[3] or 0)
    whole = int(seconds)
    return datetime.min.replace(hour=hours, minute=minutes, second=whole,
                                microsecond=round((seconds - whole) * 1e6)).time()


def _local(moment: datetime, tz: tzinfo | None) -> float:
    """Unix seconds of a wall-clock time in `tz` (None: the system's zone, daylight saving included)."""
    return moment.replace(tzinfo=tz).timestamp() if tz is not None else moment.timestamp()


def iso(ts: float) -> str:
    """Unix seconds -> '2026-11-27T05:49:12.345Z'."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
