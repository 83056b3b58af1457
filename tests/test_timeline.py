"""A camera's timeline (`GET /cameras/byname/{name}/timeline`): the range rules and answer shaping as plain
functions, the spans SQL against real DuckDB on small cases, and the whole route (API and indexer processes over
real NATS) on a synthetic month of 10 s chunks, checked against a reference merge written here, with its time
printed (not asserted: the machine is shared)."""

import statistics
import time

import httpx
import pytest

from spectare.api.timeline import (
    MAX_GAPS,
    TimelineRangeError,
    gaps_sql,
    spans_sql,
    timeline_answer,
    timeline_range,
)
from spectare.core.bus import connect, ensure_topology
from spectare.indexer.tables import open_database
from spectare.local.process import free_port

from .helpers import ServiceProcess, api_answering, eventually, run_cli, settings_for

NOW = 1_764_230_400.0
DAY = 86_400.0


# -- the range ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("start, end, join_s, expected", [
    (None, None, 1.0, (NOW - DAY, NOW)),
    ("1764000000", "1764000060", 0.0, (1_764_000_000.0, 1_764_000_060.0)),
    ("2h", None, 5.0, (NOW - 7200, NOW)),
    (None, "1764000000", 1.0, (1_764_000_000.0 - DAY, 1_764_000_000.0)),
    ("30d", "now", 1350.0, (NOW - 30 * DAY, NOW)),
])
def test_timeline_range(start, end, join_s, expected):
    assert timeline_range(start, end, NOW, join_s) == pytest.approx(expected)


@pytest.mark.parametrize("start, end, join_s, message", [
    ("1h", "2h", 1.0, "end must be after start"),
    ("100", "100", 1.0, "end must be after start"),
    ("next tuesday", None, 1.0, "start"),
    ("1000d", None, 1.0, "at most 400 days"),
    (None, None, -1.0, "join_s must be between 0 and 86400"),
    (None, None, float("nan"), "join_s"),
    (None, None, 86_401.0, "join_s"),
])
def test_timeline_range_refusals(start, end, join_s, message):
    with pytest.raises(TimelineRangeError, match=message):
        timeline_range(start, end, NOW, join_s)


def test_answer_shape_and_truncation():
    spans = [(10.0, 20.0), (30.0, 40.0), (50.0, 60.0)]
    gaps = [(20.0, 30.0, "camera away"), (60.0, None, "stream ended")]
    answer = timeline_answer("porch", 0.0, 100.0, spans, gaps, max_spans=3, max_gaps=2)
    assert answer == {"camera": "porch", "start": 0.0, "end": 100.0,
                      "spans": [{"start": 10.0, "end": 20.0}, {"start": 30.0, "end": 40.0},
                                {"start": 50.0, "end": 60.0}],
                      "gaps": [{"start": 20.0, "end": 30.0, "reason": "camera away"},
                               {"start": 60.0, "end": None, "reason": "stream ended"}],
                      "truncated": False}
    assert timeline_answer("porch", 0, 100, spans, gaps, max_spans=2, max_gaps=2)["truncated"] is True
    assert len(timeline_answer("porch", 0, 100, spans, gaps, max_spans=2, max_gaps=2)["spans"]) == 2
    assert timeline_answer("porch", 0, 100, spans, gaps, max_spans=3, max_gaps=1)["truncated"] is True


def test_sql_refuses_a_name_it_would_inline():
    with pytest.raises(ValueError):
        spans_sql("x' OR 1=1 --", 0, 1, 1, 10)
    with pytest.raises(ValueError):
        gaps_sql("Porch", 0, 1, 1, 10)


# -- the SQL, on real DuckDB -----------------------------------------------------------------------------------------


def reference_spans(chunks: list[tuple[float, float]], start: float, end: float, join_s: float,
                    ) -> list[tuple[float, float]]:
    """The merge the SQL must do, written plainly: chunks overlapping start..end in (start, end) order, a new
    span when a chunk starts more than join_s after the furthest end so far, each span clipped to the range."""
    spans: list[list[float]] = []
    reach = None
    for s, e in sorted(c for c in chunks if c[1] > start and c[0] < end):
        if reach is None or s > reach + join_s:
            spans.append([s, e])
        else:
            spans[-1][1] = max(spans[-1][1], e)
        reach = e if reach is None else max(reach, e)
    return [(max(s, start), min(e, end)) for s, e in spans]


def _insert(con, camera: str, chunks, gaps=()) -> None:
    for i, (s, e) in enumerate(chunks):
        con.execute("INSERT INTO chunks VALUES (?, ?, ?, ?, 'b', 's', 0, 9, 10, 1000, 'h264', 64, 64, ?)",
                    [camera, s, e, f"k-{camera}-{i}", i])
    for i, (s, e, reason) in enumerate(gaps):
        con.execute("INSERT INTO gaps VALUES (?, ?, ?, ?, 's', ?)", [camera, s, e, reason, i])


SMALL = [(0.0, 10.0), (10.0, 20.0), (20.5, 30.0), (33.0, 40.0), (35.0, 38.0), (38.0, 50.0), (70.0, 80.0),
         (12.0, 45.0)]  # seams, a half-second hole, a 3 s hole, chunks inside others, one overlapping many


@pytest.mark.parametrize("start, end, join_s", [
    (0, 100, 0.0), (0, 100, 0.5), (0, 100, 1.0), (0, 100, 3.0), (0, 100, 20.0), (15, 75, 1.0), (40, 60, 0.0),
    (85, 90, 1.0),
])
def test_spans_sql_merges_as_the_reference_does(tmp_path, start, end, join_s):
    con = open_database(tmp_path / "index.duckdb")
    _insert(con, "porch", SMALL)
    _insert(con, "yard", [(0.0, 100.0)])  # another camera's footage never joins in
    rows = con.execute(spans_sql("porch", start, end, join_s, 100)).fetchall()
    assert rows == reference_spans(SMALL, start, end, join_s)


def test_spans_sql_gives_one_row_more_than_the_limit(tmp_path):
    con = open_database(tmp_path / "index.duckdb")
    _insert(con, "porch", [(i * 10.0, i * 10.0 + 5) for i in range(10)])
    assert len(con.execute(spans_sql("porch", 0, 1000, 1.0, 3)).fetchall()) == 4


def test_gaps_sql_keeps_open_gaps_and_those_at_least_join_s_long(tmp_path):
    con = open_database(tmp_path / "index.duckdb")
    gaps = [(5.0, 5.4, "blip"), (10.0, 40.0, "camera away"), (50.0, None, "stream ended"), (-100.0, 2.0, "before")]
    _insert(con, "porch", [], gaps)
    rows = con.execute(gaps_sql("porch", 0, 100, 1.0, 10)).fetchall()
    assert rows == [(-100.0, 2.0, "before"), (10.0, 40.0, "camera away"), (50.0, None, "stream ended")]
    assert con.execute(gaps_sql("porch", 0, 100, 0.0, 10)).fetchall()[1] == (5.0, 5.4, "blip")
    assert con.execute(gaps_sql("porch", 41, 45, 1.0, 10)).fetchall() == []
    assert con.execute(gaps_sql("porch", 60, 70, 100.0, 10)).fetchall() == [(50.0, None, "stream ended")]


# -- the route over a month of chunks ----------------------------------------------------------------------------

CHUNK_S = 10.0
SEAM_S = 0.02  # each chunk ends a little before the next starts, as when frames are dropped at a cut
MONTH_CHUNKS = 30 * 8640  # 259 200
HOLE = range(100, 106)  # in every hour (360 chunks) chunks 100..105 are missing: a minute away, announced as a gap


def month(t0: float) -> tuple[list[tuple[float, float]], list[tuple[float, float | None, str]]]:
    chunks = [(t0 + i * CHUNK_S, t0 + (i + 1) * CHUNK_S - SEAM_S) for i in range(MONTH_CHUNKS)
              if i % 360 not in HOLE]
    gaps: list[tuple[float, float | None, str]] = [
        (t0 + (h * 360 + HOLE.start) * CHUNK_S - SEAM_S, t0 + (h * 360 + HOLE.stop) * CHUNK_S, "camera away: "
         "connection refused") for h in range(MONTH_CHUNKS // 360)]
    gaps.append((t0 + MONTH_CHUNKS * CHUNK_S - SEAM_S, None, "camera away: stream ended"))
    return chunks, gaps


@pytest.fixture(scope="module")
async def month_api(nats_server, s3_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("timeline")
    settings = settings_for(nats_server, s3_server, root / "state")
    t0 = float(int(time.time() // DAY) * DAY - 30 * DAY)
    database = root / "index.duckdb"
    con = open_database(database)
    holes = ", ".join(str(h) for h in HOLE)
    con.execute(f"""INSERT INTO chunks SELECT 'month', {t0} + i * {CHUNK_S}, {t0} + (i + 1) * {CHUNK_S} - {SEAM_S},
                    'footage/month/' || i || '.mp4', 'b', 's', i * 150, i * 150 + 149, 150, 1000000, 'h264', 1920,
                    1080, i FROM range({MONTH_CHUNKS}) t(i) WHERE i % 360 NOT IN ({holes})""")
    chunks, gaps = month(t0)
    con.executemany("INSERT INTO gaps VALUES ('month', ?, ?, ?, 's', 0)", [list(g) for g in gaps])
    assert con.execute("SELECT count(*) FROM chunks").fetchone()[0] == len(chunks)
    con.close()
    nc = await connect(settings, "test-timeline")
    await ensure_topology(nc.jetstream(), settings)
    await nc.close()
    port = free_port()
    processes = [ServiceProcess("indexer", settings, root / "indexer.log", SPECTARE_INDEXER__DATABASE=str(database)),
                 ServiceProcess("api", settings, root / "api.log", SPECTARE_API__PORT=str(port))]
    for process in processes:
        process.start()
    try:
        await api_answering(processes[1], f"http://127.0.0.1:{port}")
        done = run_cli(settings, "token", "create", "--scope", "read")
        assert done.returncode == 0, done.stderr
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                   headers={"Authorization": f"Bearer {done.stdout.strip()}"})

        async def indexer_answers():
            return (await client.get("/cameras/byname/month/timeline")).status_code == 200
        await eventually(indexer_answers, 60, interval=0.5, what="the indexer answering")
        yield client, t0, chunks, gaps
        await client.aclose()
    finally:
        for process in processes:
            process.stop()
    for process in processes:
        assert "Traceback" not in process.log, process.log[-3000:]


async def test_a_month_at_screen_resolution_is_a_few_hundred_spans_and_fast(month_api):
    client, t0, chunks, gaps = month_api
    start, end = t0, t0 + 30 * DAY + 600
    join_s = (end - start) / 1920  # the page's seconds per pixel: ~1350 s
    timings = []
    for _ in range(5):
        began = time.perf_counter()
        answer = await client.get("/cameras/byname/month/timeline",
                                  params={"start": repr(start), "end": repr(end), "join_s": repr(join_s)})
        timings.append(time.perf_counter() - began)
        assert answer.status_code == 200, answer.text
    timeline = answer.json()
    # Every hole (60 s) is narrower than a pixel: one span; the gaps too are left out, but the open one.
    assert timeline["spans"] == [{"start": start, "end": chunks[-1][1]}]
    assert timeline["gaps"] == [{"start": gaps[-1][0], "end": None, "reason": "camera away: stream ended"}]
    assert timeline["truncated"] is False
    print(f"\ntimeline, 30 days of {len(chunks)} chunks at join_s {join_s:.0f}: median "
          f"{statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms over {len(timings)} requests")

    timings = []
    for _ in range(5):
        began = time.perf_counter()
        answer = await client.get("/cameras/byname/month/timeline",
                                  params={"start": repr(start), "end": repr(end), "join_s": "1"})
        timings.append(time.perf_counter() - began)
    timeline = answer.json()
    expected = reference_spans(chunks, start, end, 1.0)
    assert len(expected) == 721
    assert [(s["start"], s["end"]) for s in timeline["spans"]] == expected
    assert len(timeline["gaps"]) == 721 <= MAX_GAPS and timeline["gaps"][0]["reason"] == "camera away: connection " \
                                                                                         "refused"
    assert [(g["start"], g["end"]) for g in timeline["gaps"]] == [(g[0], g[1]) for g in gaps]
    assert timeline["truncated"] is False
    print(f"timeline, the same month at join_s 1 (721 spans, 721 gaps): median "
          f"{statistics.median(timings) * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms")


async def test_every_chunk_its_own_span_is_truncated_at_the_cap(month_api):
    client, t0, chunks, _gaps = month_api
    answer = (await client.get("/cameras/byname/month/timeline",
                               params={"start": repr(t0), "end": repr(t0 + 30 * DAY), "join_s": "0"})).json()
    assert answer["truncated"] is True and len(answer["spans"]) == 5000
    assert [(s["start"], s["end"]) for s in answer["spans"]] == chunks[:5000]


async def test_a_short_range_inside_a_hole_and_bad_requests(month_api):
    client, t0, _chunks, gaps = month_api
    hole_start, hole_end, reason = gaps[3]
    inside = (await client.get("/cameras/byname/month/timeline",
                               params={"start": repr(hole_start + 1), "end": repr(hole_end - 1)})).json()
    assert inside["spans"] == [] and inside["gaps"] == [{"start": hole_start, "end": hole_end, "reason": reason}]
    across = (await client.get("/cameras/byname/month/timeline",
                               params={"start": repr(hole_start - 5), "end": repr(hole_end + 5)})).json()
    assert across["spans"] == [{"start": hole_start - 5, "end": hole_start}, {"start": hole_end, "end": hole_end + 5}]
    unknown = await client.get("/cameras/byname/nosuch/timeline")
    assert unknown.status_code == 404 and "nosuch" in unknown.json()["detail"]
    for params, message in (({"start": "1h", "end": "2h"}, "end must be after start"),
                            ({"join_s": "-1"}, "join_s"), ({"start": "900d"}, "at most 400 days")):
        refused = await client.get("/cameras/byname/month/timeline", params=params)
        assert refused.status_code == 422 and message in refused.json()["detail"], refused.text
