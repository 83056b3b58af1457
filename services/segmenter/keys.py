"""Names the segmenter gives things: S3 keys of chunks and the `Nats-Msg-Id` of footage events. Pure.

- chunk key: `footage/<cam>/<YYYY>/<MM>/<DD>/<HH>/<start>-<session>-<first_seq>.mp4`, the date parts
  and `<start>` (`20261127T054912.345Z`, milliseconds, truncated) in UTC of the chunk's first frame.
  A chunk is one (session, first_seq), so keys never collide; the session is percent-encoded when it
  holds anything beyond `A-Za-z0-9-_.~` (injective, so still no collision), and a retry of the same
  chunk computes the same key.
- Segment event id: `<cam>:<session>:<first_seq>`; Gap event id: `<cam>:gap:<start>:<end|open>` with
  times as Unix seconds to the microsecond (`1795845752.345000`). JetStream drops a re-publish with the
  same id within the FOOTAGE stream's duplicate window; consumers upsert gaps by camera + start.
"""

import math
from datetime import UTC, datetime
from urllib.parse import quote

from spectare.schemas import Gap, camera_name

FOOTAGE_PREFIX = "footage"


def utc_stamp(t: float) -> tuple[datetime, str]:
    """(UTC datetime to the second, `YYYYMMDDTHHMMSS.mmmZ`) of Unix time t, milliseconds truncated."""
    total_ms = math.floor(t * 1000)
    whole = datetime.fromtimestamp(total_ms // 1000, tz=UTC)
    return whole, f"{whole:%Y%m%dT%H%M%S}.{total_ms % 1000:03d}Z"


def chunk_key(camera: str, start: float, session: str, first_seq: int) -> str:
    camera_name(camera)
    if first_seq < 0:
        raise ValueError(f"first_seq must be >= 0, got {first_seq}")
    when, stamp = utc_stamp(start)
    return f"{FOOTAGE_PREFIX}/{camera}/{when:%Y/%m/%d/%H}/{stamp}-{quote(session, safe='')}-{first_seq}.mp4"


def segment_msg_id(camera: str, session: str, first_seq: int) -> str:
    return f"{camera}:{session}:{first_seq}"


def gap_msg_id(gap: Gap) -> str:
    end = "open" if gap.end is None else f"{gap.end:.6f}"
    return f"{gap.camera}:gap:{gap.start:.6f}:{end}"
