"""HLS playlists of recorded footage, without I/O: the range a playlist request covers, the playlist text of the
chunks and gaps the indexer returned for it, and the hour windows a long range is played in. Everything here is a
plain function of its arguments (tested in tests/test_playlists.py); `media.py` does the requests.

A playlist lists whole chunks, each a self-contained fragmented MP4 (no `EXT-X-MAP`): the chunk holding `start`
first (so it may begin up to a chunk early), the chunk holding `end` last. Every segment carries its wall start as
`EXT-X-PROGRAM-DATE-TIME`, and a discontinuity is marked wherever the timeline breaks (see `media_playlist`).
"""

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from spectare.core.errors import SpectareError
from spectare.schemas.keys import FOOTAGE_PREFIX

from .rules import parse_when

CONTIGUOUS_S = 0.001  # a chunk starting within 1 ms of the previous one's end continues it (keys have ms stamps)
SETTLE_MIN_S = 30.0  # a range stays open (EVENT) this long after its end at least: its last chunk is still landing
DEFAULT_TARGET_S = 10  # TARGETDURATION of a playlist with no segment (the default chunk length)
WINDOW_MAX_S = 3600.0  # windows are hour-aligned hours (shorter when playlist_max_s is under an hour)
MIME_TYPE = "application/vnd.apple.mpegurl"
_UNIX_SECONDS = re.compile(r"\s*[+-]?\d+(\.\d+)?\s*")
# The tail of a chunk key after `footage/<camera>/`: `YYYY/MM/DD/HH/<stamp>-<session>-<first seq>.mp4` (see
# spectare.schemas.keys). Only this shape is ever served, so no tail reaches outside its camera's footage.
CHUNK_TAIL = re.compile(r"\d{4}/\d{2}/\d{2}/\d{2}/\d{8}T\d{6}\.\d{3}Z-[A-Za-z0-9._~%-]{1,200}-\d{1,20}\.mp4")
# A segment's path after `segments/`: `at/<ms>/` (its position in the playlist: see retime.py), then a chunk tail.
SEGMENT_PATH = re.compile(r"(?:at/(?P<at>\d{1,10})/)?(?P<tail>" + CHUNK_TAIL.pattern + ")")


class PlaylistRangeError(SpectareError):
    """A playlist or windows request whose range cannot be used (unreadable, reversed, too long): answered 422."""


class Chunk(Protocol):  # a ChunkRef as the indexer answers it (read-only fields)
    @property
    def key(self) -> str: ...
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float: ...


class Gap(Protocol):  # a GapRef
    @property
    def start(self) -> float: ...
    @property
    def end(self) -> float | None: ...


# -- the range of a request ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaylistRange:
    start: float
    end: float
    pinned: bool  # both bounds were given as Unix seconds: the URL means the same range whenever it is loaded


def is_unix_seconds(text: str | None) -> bool:
    return text is not None and _UNIX_SECONDS.fullmatch(text) is not None


def playlist_range(start: str | None, end: str | None, now: float, max_s: float) -> PlaylistRange:
    """The range of `vod.m3u8?start=&end=`. Without `end` it is the window start .. start + max_s (open while that
    reaches now); without `start`, the max_s before `end` (or before now). Longer than max_s: PlaylistRangeError."""
    try:
        if end is None:
            t0 = parse_when(start, now, "start") if start is not None else now - max_s
            t1 = t0 + max_s
        else:
            t1 = parse_when(end, now, "end")
            t0 = parse_when(start, now, "start") if start is not None else t1 - max_s
    except SpectareError as exc:
        raise PlaylistRangeError(str(exc)) from None
    if t1 <= t0:
        raise PlaylistRangeError("end must be after start")
    if t1 - t0 > max_s:
        raise PlaylistRangeError(
            f"the range is {t1 - t0:.0f} s long; one playlist covers at most {max_s:.0f} s ([api] playlist_max_s): "
            "ask vod/windows?start=&end= (beside vod.m3u8) for the range's windows and play them one after another"
        )
    return PlaylistRange(t0, t1, is_unix_seconds(start) and is_unix_seconds(end))


def windows_range(start: str | None, end: str | None, now: float, default_s: float = 86_400.0,
                  ) -> tuple[float, float]:
    """The range of `vod/windows?start=&end=`: end defaults to now, start to a day before end."""
    try:
        t1 = parse_when(end, now, "end") if end is not None else now
        t0 = parse_when(start, now, "start") if start is not None else t1 - default_s
    except SpectareError as exc:
        raise PlaylistRangeError(str(exc)) from None
    if t1 <= t0:
        raise PlaylistRangeError("end must be after start")
    return t0, t1


def pinned_query(rng: PlaylistRange) -> str:
    """The query string naming rng in Unix seconds, exactly (`repr` round-trips a float)."""
    return f"start={rng.start!r}&end={rng.end!r}"


# -- the playlist ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Playlist:
    text: str
    segments: int
    closed: bool  # VOD with ENDLIST; else EVENT, still growing


def session_of(key: str) -> str:
    """The session part of a chunk key (`<stamp>-<session>-<seq>.mp4`); the whole name when it has no such parts,
    which makes the chunk a session of its own (a discontinuity on either side: the safe side)."""
    name = key.rsplit("/", 1)[-1].removesuffix(".mp4")
    stamp, _, rest = name.partition("-")
    session, _, seq = rest.rpartition("-")
    return session if stamp and session and seq.isdigit() else name


def segment_uri(camera: str, key: str, at: float) -> str:
    """The URI of a chunk in its camera's playlist, relative to it: `segments/at/<ms>/<key after
    footage/<camera>/>`, `at` being its position in the playlist (seconds), the key percent-encoded (a session may
    hold `%`). The path ends in `.mp4`, with no query: FFmpeg 8 refuses segments whose URL ends otherwise."""
    prefix = f"{FOOTAGE_PREFIX}/{camera}/"
    if not key.startswith(prefix):
        raise ValueError(f"chunk key {key!r} is not under {prefix}")
    return f"segments/at/{round(at * 1000)}/" + quote(key[len(prefix):], safe="/")


def segment_path(path: str) -> tuple[int, str] | None:
    """(position in ms, chunk tail) of a segment route's path, None for anything else (0 without `at/<ms>/`)."""
    found = SEGMENT_PATH.fullmatch(path)
    if found is None:
        return None
    return int(found["at"] or 0), found["tail"]


def program_date_time(t: float) -> str:
    """`2026-11-27T06:10:54.694Z`: Unix time t in UTC, to the millisecond (rounded)."""
    ms = round(t * 1000)
    whole = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return f"{whole:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def in_range(chunks: Iterable[Chunk], start: float, end: float) -> list[Chunk]:
    """The chunks overlapping [start, end), each once, in time order."""
    seen: dict[str, Chunk] = {}
    for chunk in chunks:
        if chunk.end > start and chunk.start < end:
            seen.setdefault(chunk.key, chunk)
    return sorted(seen.values(), key=lambda c: (c.start, c.key))


def breaks_between(previous: Chunk, chunk: Chunk, gaps: Sequence[Gap]) -> bool:
    """Whether the timeline breaks before `chunk`: another session, a jump in time, or a gap between the two."""
    if session_of(chunk.key) != session_of(previous.key):
        return True
    if abs(chunk.start - previous.end) > CONTIGUOUS_S:
        return True
    return any(previous.end - CONTIGUOUS_S <= g.start <= chunk.start + CONTIGUOUS_S for g in gaps)


def media_playlist(camera: str, chunks: Iterable[Chunk], gaps: Sequence[Gap], start: float, end: float,
                   now: float) -> Playlist:
    """The HLS (version 7) media playlist of camera's chunks overlapping [start, end).

    - `EXT-X-DISCONTINUITY` before a chunk that does not continue the one before it (`breaks_between`).
    - `EXT-X-PROGRAM-DATE-TIME` on every segment: the chunk's own recorded start, so a player's wall clock never
      depends on summing rounded EXTINFs across hundreds of segments (~45 bytes a segment).
    - `EXTINF`: the chunk's duration (end - start, microseconds); `EXT-X-TARGETDURATION`: the longest, rounded up
      (`DEFAULT_TARGET_S` with no segment). Each URI carries the segment's position, the EXTINFs before it.
    - Closed (`PLAYLIST-TYPE:VOD` + `ENDLIST`) once `end` lies at least max(SETTLE_MIN_S, two chunk lengths) in the
      past, when the chunk holding it has landed; before that `PLAYLIST-TYPE:EVENT`, no ENDLIST: players reload it
      and find the chunks that landed since appended.
    """
    listed = in_range(chunks, start, end)
    longest = max((c.end - c.start for c in listed), default=0.0)
    target = max(1, math.ceil(longest - 1e-9)) if listed else DEFAULT_TARGET_S
    closed = now >= end + max(SETTLE_MIN_S, 2 * longest)
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}", "#EXT-X-MEDIA-SEQUENCE:0",
             f"#EXT-X-PLAYLIST-TYPE:{'VOD' if closed else 'EVENT'}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    previous: Chunk | None = None
    position = 0.0
    for chunk in listed:
        if previous is not None and breaks_between(previous, chunk, gaps):
            lines.append("#EXT-X-DISCONTINUITY")
        lines += [f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(chunk.start)}",
                  f"#EXTINF:{chunk.end - chunk.start:.6f},", segment_uri(camera, chunk.key, position)]
        position += chunk.end - chunk.start
        previous = chunk
    if closed:
        lines.append("#EXT-X-ENDLIST")
    return Playlist("\n".join(lines) + "\n", len(listed), closed)


# -- windows ----------------------------------------------------------------------------------------------------------


def window_s(playlist_max_s: float) -> float:
    return min(WINDOW_MAX_S, playlist_max_s)


def windows_sql(camera: str, start: float, end: float, length: float, limit: int) -> str:
    """The indexer SQL giving, per window of `length` seconds (aligned on multiples of it) that has a chunk starting
    in it: its slot, chunk count, first start, last end, recorded seconds. A chunk belongs to the window its start
    falls in (so consecutive windows share none), the chunk holding `start` to the first window. At most limit + 1
    rows (one more says there are more)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", camera):  # inlined into SQL: only a valid name may be
        raise ValueError(f"invalid camera name {camera!r}")
    first = math.floor(start / length)
    return (f"SELECT greatest(floor(start_time / {length!r}), {first}) AS slot, count(*), min(start_time), "
            f"max(end_time), sum(end_time - start_time) FROM chunks WHERE camera = '{camera}' AND end_time > "
            f"{start!r} AND start_time < {end!r} GROUP BY slot ORDER BY slot LIMIT {limit + 1}")


def windows(rows: Sequence[Sequence[Any]], playlist_path: str, start: float, end: float | None, length: float,
            limit: int) -> dict[str, Any]:
    """The windows answer from `windows_sql`'s rows: each window's playlist range (from its first chunk, or from
    `start` for the first, to the window's end, or `end` when that comes first; without `end` the last window
    reaches its full hour, so its playlist grows while the hour runs), chunks, recorded seconds and playlist URL;
    `next_start` (where to ask again) when more than `limit` windows have footage."""
    answer: list[dict[str, Any]] = []
    for slot, count, first_start, last_end, seconds in rows[:limit]:
        w0 = max(start, float(first_start))
        w1 = (float(slot) + 1) * length if end is None else min((float(slot) + 1) * length, end)
        answer.append({"start": w0, "end": w1, "chunks": int(count), "footage_s": round(float(seconds), 3),
                       "last_chunk_end": float(last_end),
                       "playlist": f"{playlist_path}?{pinned_query(PlaylistRange(w0, w1, True))}"})
    truncated = len(rows) > limit
    return {"window_s": length, "windows": answer, "truncated": truncated,
            "next_start": answer[-1]["last_chunk_end"] if truncated and answer else None}
