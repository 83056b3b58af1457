"""HLS playlists of recorded footage without I/O (table-driven, `spectare.api.playlists`): discontinuities at gaps
and session changes, EXTINF sums, program dates across hours, days and past 24 h, TARGETDURATION, EVENT against
VOD, the empty range, the range a request covers and its limit, segment URIs and the keys a segment route takes,
hour windows."""

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from spectare.api.playlists import (
    DEFAULT_TARGET_S,
    PlaylistRangeError,
    in_range,
    is_unix_seconds,
    media_playlist,
    pinned_query,
    playlist_range,
    program_date_time,
    segment_path,
    segment_uri,
    session_of,
    window_s,
    windows,
    windows_sql,
)
from spectare.schemas.keys import chunk_key

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC).timestamp()
CAM = "porch"


@dataclass(frozen=True)
class Chunk:
    key: str
    start: float
    end: float


@dataclass(frozen=True)
class Gap:
    start: float
    end: float | None


def chunk(start: float, end: float, session: str = "a1-0", seq: int | None = None) -> Chunk:
    return Chunk(chunk_key(CAM, start, session, int(start) if seq is None else seq), start, end)


def run(*spans: tuple[float, float, str]) -> list[Chunk]:
    """Chunks of (start offset, end offset, session) after T0."""
    return [chunk(T0 + a, T0 + b, s) for a, b, s in spans]


def segments(text: str) -> list[dict]:
    """Each segment of a playlist: its URI, EXTINF, PROGRAM-DATE-TIME and whether a discontinuity precedes it."""
    found, pending = [], {"discontinuity": False}
    for line in text.splitlines():
        if line == "#EXT-X-DISCONTINUITY":
            pending["discontinuity"] = True
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            pending["date"] = line.split(":", 1)[1]
        elif line.startswith("#EXTINF:"):
            pending["duration"] = float(line[len("#EXTINF:"):].rstrip(","))
        elif line and not line.startswith("#"):
            found.append({**pending, "uri": line})
            pending = {"discontinuity": False}
    return found


def tag(text: str, name: str) -> str | None:
    values = [line.split(":", 1)[1] for line in text.splitlines() if line.startswith(f"#{name}:")]
    assert len(values) <= 1, f"{name} more than once"
    return values[0] if values else None


CLOSED_NOW = T0 + 86_400 * 3  # long after every range below


@pytest.mark.parametrize("what, chunks, gaps, breaks", [
    ("one session, back to back", run((0, 10, "a"), (10, 20, "a"), (20, 30, "a")), [], [False, False, False]),
    ("a jump in time", run((0, 10, "a"), (10, 20, "a"), (45, 55, "a")), [], [False, False, True]),
    ("a new session starting where the last ended", run((0, 10, "a"), (10, 20, "b"), (20, 30, "b")), [],
     [False, True, False]),
    ("a gap recorded between two chunks that touch", run((0, 10, "a"), (10, 20, "a")), [Gap(T0 + 10, T0 + 10)],
     [False, True]),
    ("a gap before the range's first chunk marks nothing", run((5, 10, "a"), (10, 20, "a")), [Gap(T0, T0 + 5)],
     [False, False]),
    ("within a millisecond is back to back", run((0, 10, "a"), (10.0004, 20, "a")), [], [False, False]),
    ("two milliseconds apart is a jump", run((0, 10, "a"), (10.002, 20, "a")), [], [False, True]),
    ("a session holding '-' and '%'", [chunk(T0, T0 + 10, "x-1:2"), chunk(T0 + 10, T0 + 20, "x-1:2"),
                                       chunk(T0 + 20, T0 + 30, "x-1:3")], [], [False, False, True]),
])
def test_discontinuities_at_gaps_jumps_and_session_changes(what, chunks, gaps, breaks):
    playlist = media_playlist(CAM, chunks, gaps, T0, T0 + 3600, CLOSED_NOW)
    found = segments(playlist.text)
    assert [s["discontinuity"] for s in found] == breaks, what
    assert [s["date"] for s in found] == [program_date_time(c.start) for c in chunks]  # on every segment
    assert playlist.text.count("#EXT-X-DISCONTINUITY") == sum(breaks)


def test_extinf_is_each_chunks_duration_they_sum_to_the_recorded_span_and_uris_carry_the_sums():
    starts = [T0 + i * 2.0666667 for i in range(30)]  # 2 s chunks of 15 fps, not whole seconds
    chunks = [chunk(a, b) for a, b in zip(starts, starts[1:] + [starts[-1] + 2.0666667], strict=True)]
    chunks[20:] = [chunk(c.start + 600, c.end + 600, "b") for c in chunks[20:]]  # a gap and a new session
    found = segments(media_playlist(CAM, chunks, [], T0, T0 + 3600, CLOSED_NOW).text)
    assert [s["duration"] for s in found] == [pytest.approx(c.end - c.start, abs=1e-6) for c in chunks]
    assert math.fsum(s["duration"] for s in found) == pytest.approx(30 * 2.0666667, abs=1e-4)
    assert [s["discontinuity"] for s in found] == [i == 20 for i in range(30)]
    # Each segment's position is the EXTINFs before it, gap or not: the timeline the segment route moves it to.
    assert [segment_path(s["uri"].removeprefix("segments/"))[0] for s in found] == [
        round(i * 2066.6667) for i in range(30)]


@pytest.mark.parametrize("t, text", [
    (datetime(2026, 11, 27, 6, 10, 54, 694000, tzinfo=UTC).timestamp(), "2026-11-27T06:10:54.694Z"),
    (datetime(2026, 11, 27, 6, 59, 59, tzinfo=UTC).timestamp() + 0.9996, "2026-11-27T07:00:00.000Z"),  # rounds
    (datetime(2026, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp(), "2026-12-31T23:59:59.999Z"),
    (datetime(2027, 1, 1, tzinfo=UTC).timestamp(), "2027-01-01T00:00:00.000Z"),
    (datetime(2028, 2, 29, 12, tzinfo=UTC).timestamp() + 0.0004, "2028-02-29T12:00:00.000Z"),
    (0.001, "1970-01-01T00:00:00.001Z"),
])
def test_program_date_time_is_utc_to_the_millisecond(t, text):
    assert program_date_time(t) == text


def test_program_dates_cross_hours_and_days_and_run_past_24_hours():
    start = datetime(2026, 11, 27, 23, 0, tzinfo=UTC).timestamp()
    chunks = [chunk(start + i * 600, start + (i + 1) * 600) for i in range(6 * 26)]  # 26 h of 10-minute chunks
    found = segments(media_playlist(CAM, chunks, [], start, start + 26 * 3600, CLOSED_NOW).text)
    assert len(found) == 156
    assert found[0]["date"] == "2026-11-27T23:00:00.000Z"
    assert found[6]["date"] == "2026-11-28T00:00:00.000Z"  # the next day
    assert found[150]["date"] == "2026-11-29T00:00:00.000Z"  # 25 h in
    assert found[-1]["date"] == "2026-11-29T00:50:00.000Z"
    assert found[-1]["uri"] == f"segments/at/{155 * 600_000}/" + chunks[-1].key.split("/", 2)[2]  # .../2026/11/29/00/


@pytest.mark.parametrize("durations, target", [
    ([10.0, 10.0], 10),
    ([10.0, 10.4, 9.6], 11),
    ([2.0666667, 1.9], 3),
    ([0.2], 1),
    ([], DEFAULT_TARGET_S),
])
def test_target_duration_is_the_longest_chunk_rounded_up(durations, target):
    chunks, at = [], T0
    for d in durations:
        chunks.append(chunk(at, at + d))
        at += d
    text = media_playlist(CAM, chunks, [], T0, T0 + 3600, CLOSED_NOW).text
    assert tag(text, "EXT-X-TARGETDURATION") == str(target)
    assert all(round(s["duration"]) <= target for s in segments(text))


@pytest.mark.parametrize("end_offset, now_offset, closed", [
    (3600, 100, False),  # the range reaches into the future
    (3600, 3600, False),  # ends now
    (3600, 3629, False),  # its last chunk may still be landing
    (3600, 3630, True),  # 30 s past: closed
    (60, 3600, True),
])
def test_a_range_reaching_now_is_an_event_playlist_without_endlist(end_offset, now_offset, closed):
    chunks = run((0, 10, "a"), (10, 20, "a"))
    playlist = media_playlist(CAM, chunks, [], T0, T0 + end_offset, T0 + now_offset)
    assert playlist.closed is closed
    assert tag(playlist.text, "EXT-X-PLAYLIST-TYPE") == ("VOD" if closed else "EVENT")
    assert ("#EXT-X-ENDLIST" in playlist.text) is closed
    assert playlist.text.rstrip().endswith("#EXT-X-ENDLIST") is closed


def test_long_chunks_keep_a_range_open_for_two_chunk_lengths():
    chunks = run((0, 60, "a"), (60, 120, "a"))  # a camera with one-minute chunks
    assert not media_playlist(CAM, chunks, [], T0, T0 + 100, T0 + 100 + 119).closed
    assert media_playlist(CAM, chunks, [], T0, T0 + 100, T0 + 100 + 120).closed


def test_header_tags_and_an_empty_range():
    empty = media_playlist(CAM, [], [], T0, T0 + 600, CLOSED_NOW)
    assert empty.text.splitlines() == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-TARGETDURATION:10",
                                       "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD",
                                       "#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-ENDLIST"]
    assert empty.segments == 0 and empty.text.endswith("\n")
    growing = media_playlist(CAM, [], [], T0, T0 + 600, T0 + 10)
    assert "#EXT-X-ENDLIST" not in growing.text and "#EXT-X-PLAYLIST-TYPE:EVENT" in growing.text
    assert "#EXT-X-MAP" not in media_playlist(CAM, run((0, 10, "a")), [], T0, T0 + 600, CLOSED_NOW).text


@pytest.mark.parametrize("spans, start, end, listed", [
    ([(0, 10), (10, 20), (20, 30)], 10, 20, [(10, 20)]),  # half open: [10, 20) holds the second chunk only
    ([(0, 10), (10, 20), (20, 30)], 5, 25, [(0, 10), (10, 20), (20, 30)]),  # whole chunks, from the one at start
    ([(0, 10), (10, 20)], 20, 30, []),
    ([(10, 20), (0, 10), (10, 20)], 0, 30, [(0, 10), (10, 20)]),  # each key once, in time order
])
def test_chunks_in_a_range(spans, start, end, listed):
    chunks = [chunk(T0 + a, T0 + b) for a, b in spans]
    assert [(c.start - T0, c.end - T0) for c in in_range(chunks, T0 + start, T0 + end)] == listed


NOW = T0 + 7200


@pytest.mark.parametrize("start, end, expected, pinned", [
    (repr(T0), repr(T0 + 600), (T0, T0 + 600), True),
    ("10m", None, (NOW - 600, NOW - 600 + 3600), False),  # without end: one window from start
    (None, None, (NOW - 3600, NOW), False),
    (None, repr(T0 + 3600), (T0, T0 + 3600), False),
    ("2026-11-27T06:00Z", "2026-11-27T07:00Z", (T0, T0 + 3600), False),  # exactly the limit
    (f" {T0!r} ", repr(T0 + 1), (T0, T0 + 1), True),
])
def test_the_range_of_a_playlist_request(start, end, expected, pinned):
    rng = playlist_range(start, end, NOW, 3600)
    assert (rng.start, rng.end) == pytest.approx(expected) and rng.pinned is pinned
    again = playlist_range(*[p.split("=")[1] for p in pinned_query(rng).split("&")], NOW + 999, 3600)
    assert (again.start, again.end, again.pinned) == (rng.start, rng.end, True)  # the pinned URL means the same


@pytest.mark.parametrize("start, end, message", [
    (repr(T0), repr(T0 + 3601), "the range is 3601 s long; one playlist covers at most 3600 s"),
    ("3h", "now", "the range is 10800 s long"),
    (repr(T0 + 10), repr(T0), "end must be after start"),
    ("yesterday-ish", None, "start: cannot read 'yesterday-ish' as a time"),
    (None, "soon", "end: cannot read 'soon' as a time"),
    ("1e400", None, "start: cannot read '1e400' as a time"),
])
def test_a_range_that_cannot_be_played_says_why(start, end, message):
    with pytest.raises(PlaylistRangeError, match=re.escape(message)) as refused:
        playlist_range(start, end, NOW, 3600)
    assert "\n" not in str(refused.value)
    if "long" in message:
        assert "vod/windows" in str(refused.value)  # and how to ask for a longer range


@pytest.mark.parametrize("text, absolute", [
    ("1764230400", True), ("1764230400.25", True), (" 17 ", True), ("2h", False), ("now", False),
    ("2026-11-27T06:00Z", False), (None, False),
])
def test_unix_seconds_are_the_only_pinned_form(text, absolute):
    assert is_unix_seconds(text) is absolute


@pytest.mark.parametrize("session, expected", [
    ("3", "3"), ("00a1f3-2", "00a1f3-2"), ("x:y", "x%3Ay"), ("a b", "a%20b"),
])
def test_session_and_segment_uri_of_a_chunk_key(session, expected):
    key = chunk_key(CAM, T0 + 0.5, session, 42)
    assert session_of(key) == expected
    uri = segment_uri(CAM, key, 12.3456)
    assert uri == ("segments/at/12346/2026/11/27/06/20261127T060000.500Z-" + expected.replace("%", "%25")
                   + "-42.mp4")
    assert segment_path(f"at/12346/{key.removeprefix(f'footage/{CAM}/')}") == (12346, key.removeprefix(
        f"footage/{CAM}/"))
    with pytest.raises(ValueError):
        segment_uri("garage", key, 0)
    assert session_of("footage/porch/odd.mp4") == "odd"  # unparsable: a session of its own


@pytest.mark.parametrize("tail, served", [
    ("2026/11/27/06/20261127T060000.500Z-00a1f3-2-42.mp4", (0, "2026/11/27/06/20261127T060000.500Z-00a1f3-2-42.mp4")),
    ("at/0/2026/11/27/06/20261127T060000.500Z-3-0.mp4", (0, "2026/11/27/06/20261127T060000.500Z-3-0.mp4")),
    ("at/86400000/2026/11/27/06/20261127T060000.500Z-x%3Ay-42.mp4",
     (86_400_000, "2026/11/27/06/20261127T060000.500Z-x%3Ay-42.mp4")),
    ("at/-5/2026/11/27/06/20261127T060000.500Z-3-0.mp4", False),
    ("at/12345678901/2026/11/27/06/20261127T060000.500Z-3-0.mp4", False),
    ("at/2026/11/27/06/20261127T060000.500Z-3-0.mp4", False),
    ("at/5/../../2026/11/27/06/20261127T060000.500Z-3-0.mp4", False),
    ("../garage/2026/11/27/06/20261127T060000.500Z-3-0.mp4", False),
    ("2026/11/27/06/../../../../../garage/2026/11/27/06/20261127T060000.500Z-3-0.mp4", False),
    ("2026/11/27/06/20261127T060000.500Z-3-0.jpg", False),
    ("2026/11/27/06/20261127T060000.500Z-3-0.mp4/", False),
    ("/2026/11/27/06/20261127T060000.500Z-3-0.mp4", False),
    ("2026/11/27/06/20261127T060000.500Z-a/b-0.mp4", False),
    ("", False),
])
def test_a_segment_route_takes_only_chunk_key_tails(tail, served):
    assert segment_path(tail) == (served or None)


def test_windows_from_the_indexers_rows():
    hour = 3600.0
    slot = math.floor(T0 / hour)  # 06:00
    rows = [(slot, 300, T0 + 1800.5, T0 + 3605.0, 1804.5),  # from 06:30:00.5; its last chunk runs into 07:00
            (slot + 1, 360, T0 + 3605.0, T0 + 7200.0, 3595.0),
            (slot + 3, 10, T0 + 3 * 3600, T0 + 3 * 3600 + 100, 100.0)]  # nothing at 08:00
    path = "/cameras/byname/porch/vod.m3u8"
    closed = windows(rows, path, T0 + 1000, T0 + 4 * 3600 - 0.5, hour, limit=10)
    assert [(w["start"] - T0, w["end"] - T0, w["chunks"]) for w in closed["windows"]] == [
        (1800.5, 3600, 300), (3605.0, 7200, 360), (10800, 14399.5, 10)]
    assert closed["windows"][1]["playlist"] == f"{path}?start={T0 + 3605.0!r}&end={T0 + 7200!r}"
    assert (closed["truncated"], closed["next_start"]) == (False, None)
    for w in closed["windows"]:  # every window's playlist is one a playlist request accepts as it is
        query = dict(part.split("=") for part in w["playlist"].split("?")[1].split("&"))
        rng = playlist_range(query["start"], query["end"], NOW, hour)
        assert (rng.start, rng.end, rng.pinned) == (w["start"], w["end"], True)
    open_ended = windows(rows, path, T0 + 1000, None, hour, limit=2)
    assert open_ended["windows"][-1]["end"] == T0 + 7200  # the hour's end, past the chunks so far
    assert (open_ended["truncated"], open_ended["next_start"]) == (True, T0 + 7200.0)


def test_windows_are_hours_unless_playlists_are_shorter_and_the_sql_takes_only_names():
    assert (window_s(3600), window_s(86_400), window_s(600)) == (3600, 3600, 600)
    sql = windows_sql("porch", T0 + 1000, T0 + 5000, 3600.0, 10)
    assert "camera = 'porch'" in sql and "LIMIT 11" in sql
    assert f"greatest(floor(start_time / 3600.0), {int(T0 // 3600)})" in sql
    for bad in ("x' OR 1=1 --", "Porch", "", "a" * 64):
        with pytest.raises(ValueError):
            windows_sql(bad, T0, T0 + 1, 3600.0, 10)
