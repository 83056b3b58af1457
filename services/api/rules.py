"""The API's decisions, without I/O: camera edits, time parameters, packet rates, camera states, the scaling
signal. Everything here is a plain function of its arguments (tested in tests/test_api_logic.py)."""

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from spectare.core.errors import SpectareError
from spectare.core.redact import redact
from spectare.core.timeparse import TIME_FORMS, parse_time
from spectare.schemas import CameraConfig

# -- cameras -------------------------------------------------------------------------------------------------------


def keep_password(incoming: str, stored: str | None) -> str:
    """The URL to store: `incoming`, unless it is the redacted form of the stored URL (a client that read the
    camera and sends it back, `***` and all), which keeps the stored URL and its password."""
    if stored is not None and incoming != stored and incoming == redact(stored):
        return stored
    return incoming


def edited(current: CameraConfig | None, name: str, fields: dict[str, Any], replace: bool) -> dict[str, Any]:
    """The fields of the camera after an edit: `replace` (PUT) starts from the defaults, else (PATCH) from
    `current`; fields given replace, None puts a field back to its default. The result still has to pass
    `CameraConfig.create`."""
    base = {} if replace or current is None else current.model_dump(exclude={"created_at", "updated_at"})
    merged = {k: v for k, v in {**base, **fields, "name": name}.items() if v is not None}
    if merged.get("labels") is not None:
        merged["labels"] = tuple(merged["labels"])
    if fields.get("url") is not None:
        merged["url"] = keep_password(fields["url"], current.url if current else None)
    return merged


def null_fields(fields: dict[str, Any], nullable: Iterable[str]) -> list[str]:
    """Fields given as null that cannot be null."""
    allowed = set(nullable)
    return sorted(k for k, v in fields.items() if v is None and k not in allowed)


# -- time parameters -----------------------------------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")
MIN_TIME, MAX_TIME = 0.0, 32503680000.0  # 1970 .. 3000


def parse_when(text: str, now: float, what: str) -> float:
    """A time parameter: Unix seconds (`1764230400.5`) or anything `spectare` commands take (`2h`, `today 08:30`,
    ISO 8601 ...); SpectareError naming the parameter otherwise."""
    cleaned = text.strip()
    try:
        value = float(cleaned) if _NUMBER.fullmatch(cleaned) else parse_time(cleaned, now=now)
    except SpectareError:
        raise SpectareError(f"{what}: cannot read {text[:80]!r} as a time: use Unix seconds or {TIME_FORMS}") from None
    if not (math.isfinite(value) and MIN_TIME <= value <= MAX_TIME):
        raise SpectareError(f"{what}: {text[:80]!r} is out of range (1970 to 3000)")
    return value


def time_range(start: str | None, end: str | None, now: float, default_span_s: float,
               max_span_s: float | None = None) -> tuple[float, float]:
    """(start, end) from optional parameters: end defaults to now, start to end - default_span_s."""
    t1 = parse_when(end, now, "end") if end is not None else now
    t0 = parse_when(start, now, "start") if start is not None else t1 - default_span_s
    if t1 <= t0:
        raise SpectareError("end must be after start")
    if max_span_s is not None and t1 - t0 > max_span_s:
        raise SpectareError(f"the range is {t1 - t0:.0f} s long; at most {max_span_s:.0f} s per request")
    return t0, t1


# -- packet rates and camera states ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PacketSample:
    """One stored message of `cams.<cam>.packets`, seen without its payload."""

    camera: str
    time: float  # when JetStream stored it, Unix seconds
    size: int  # payload bytes
    session: str | None  # from its Msg-Id `<cam>:<session>:<first seq>` (`spectare.schemas.parse_packets_id`)
    first_seq: int | None


@dataclass(frozen=True)
class Rate:
    fps: float | None
    bitrate_bps: float | None


def rate(samples: list[PacketSample]) -> Rate:
    """Packets and bits per second of one camera from its recent messages.

    Each message holds consecutive packets and its Msg-Id names the first one, so in one session a message holds
    the packets up to the next message's first seq; and it is stored when its last packet has arrived (a group is
    sent when full, a keyframe alone at once). So the packets that arrived between two stored messages are those
    of the messages after the first, up to and including the second: the difference of the *next* messages'
    first seqs. Pairing each message's time with its own first seq instead counts a whole group too many or too
    few whenever the window starts at a long group and ends at a keyframe (+25% at 30 fps with 1 s groups).

    Measured over the latest session only; None where fewer than three of its messages are there (the last one
    only closes the one before it)."""
    if not samples:
        return Rate(None, None)
    ordered = sorted(samples, key=lambda s: s.time)
    latest = ordered[-1].session
    run = sorted(((seq, s) for s in ordered if s.session == latest and (seq := s.first_seq) is not None),
                 key=lambda pair: pair[0])
    if len(run) < 3 or latest is None:
        span = ordered[-1].time - ordered[0].time
        bitrate = sum(s.size for s in ordered[1:]) * 8 / span if len(ordered) > 1 and span > 0 else None
        return Rate(None, bitrate)
    # Message i holds packets run[i].seq .. run[i + 1].seq - 1 and was stored at run[i].time.
    first, last = run[0][1], run[-2][1]
    span = last.time - first.time
    if span <= 0:
        return Rate(None, None)
    packets = run[-1][0] - run[1][0]  # those of messages 1 .. n-2, stored after the first, up to the last closed
    return Rate(max(packets, 0) / span, sum(s.size for _, s in run[1:-1]) * 8 / span)


def camera_state(lease_held: bool, last_packet_age_s: float | None, stale_after_s: float) -> str:
    """`recording` when an ingest worker holds the camera's lease and its last packet is fresh; `camera_away` when a
    worker holds it but no packet came for `stale_after_s` (the camera is off, refuses, or has not answered yet: its
    status says why); `orphaned` when no worker holds it."""
    if not lease_held:
        return "orphaned"
    fresh = last_packet_age_s is not None and last_packet_age_s < stale_after_s
    return "recording" if fresh else "camera_away"


def workers_needed(cameras: int, per_worker: int) -> int:
    """Ingest workers the registered cameras need at `per_worker` cameras each (at least one while any camera
    is registered, none without cameras)."""
    return math.ceil(cameras / max(per_worker, 1)) if cameras > 0 else 0
