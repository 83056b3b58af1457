"""S3 object keys, defined once: every service that writes or reads footage and snapshots names them here.

- chunk:    `footage/<cam>/<YYYY>/<MM>/<DD>/<HH>/<start>-<session>-<first_seq>.mp4`
- snapshot: `snapshots/<cam>/<YYYY>/<MM>/<DD>/<HH>/<time>-<session>-<seq>.jpg`

The date parts and the stamp (`20261127T054912.345Z`, milliseconds, truncated) are UTC of the chunk's
first frame or the keyframe's time. A chunk is one (session, first_seq) and a snapshot one (session,
seq), so keys never collide; the session is percent-encoded when it holds anything beyond
`A-Za-z0-9-_.~` (injective, so still no collision), and a retry computes the same key.
"""

import math
from datetime import UTC, datetime
from urllib.parse import quote

from .names import camera_name

FOOTAGE_PREFIX = "footage"
SNAPSHOT_PREFIX = "snapshots"


def utc_stamp(t: float) -> tuple[datetime, str]:
    """(UTC datetime to the second, `YYYYMMDDTHHMMSS.mmmZ`) of Unix time t, milliseconds truncated."""
    total_ms = math.floor(t * 1000)
    whole = datetime.fromtimestamp(total_ms // 1000, tz=UTC)
    return whole, f"{whole:%Y%m%dT%H%M%S}.{total_ms % 1000:03d}Z"


def _key(prefix: str, camera: str, t: float, session: str, seq: int, suffix: str) -> str:
    camera_name(camera)
    if seq < 0:
        raise ValueError(f"sequence must be >= 0, got {seq}")
    when, stamp = utc_stamp(t)
    return f"{prefix}/{camera}/{when:%Y/%m/%d/%H}/{stamp}-{quote(session, safe='')}-{seq}.{suffix}"


def chunk_key(camera: str, start: float, session: str, first_seq: int) -> str:
    return _key(FOOTAGE_PREFIX, camera, start, session, first_seq, "mp4")


def snapshot_key(camera: str, time: float, session: str, seq: int) -> str:
    return _key(SNAPSHOT_PREFIX, camera, time, session, seq, "jpg")


CLIP_PREFIX = "clips"


def clip_key(camera: str, start: float, end: float) -> str:
    """`clips/<cam>/<start>-<end>.mp4`: an exported clip; the same range exports to the same key."""
    camera_name(camera)
    _, first = utc_stamp(start)
    _, last = utc_stamp(end)
    return f"{CLIP_PREFIX}/{camera}/{first}-{last}.mp4"
