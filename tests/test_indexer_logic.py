"""The indexer's pure parts, table-driven, no servers: time parsing, SQL classification, the incident rule (run
on an in-memory DuckDB), message -> row checks, and the writer's idempotence on a real DuckDB file."""

import math
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import msgpack
import pytest

from spectare.core.errors import SpectareError
from spectare.core.timeparse import parse_time
from spectare.indexer.incidents import IncidentFilter, find_incidents
from spectare.indexer.queries import snapshot_keys
from spectare.indexer.rows import Batch, Rejected, detection_index, detection_row, footage_row
from spectare.indexer.sqlguard import QueryRefused, check_sql, json_safe
from spectare.indexer.tables import DDL, open_database
from spectare.indexer.writer import CameraUpdate, IndexWriter
from spectare.schemas import CameraConfig, Detection, Gap, Names, Segment
from spectare.schemas.messages import unpack_message
from tests.golden.make import GOLDEN

PARIS = ZoneInfo("Europe/Paris")
NOW = 1795845752.25  # 2026-11-28T00:02:32.25Z = 01:02:32.25 in Paris (winter time, UTC+1)


@pytest.mark.parametrize(("text", "expected"), [
    ("now", NOW),
    ("NOW", NOW),
    ("2h", NOW - 7200),
    ("2h ago", NOW - 7200),
    ("1h30m", NOW - 5400),
    ("90s ago", NOW - 90),
    ("today", 1795820400.0),                    # 2026-11-28T00:00 Paris
    ("today 08:30", 1795820400.0 + 8.5 * 3600),
    ("yesterday 14:00", 1795820400.0 - 10 * 3600),
    ("Yesterday   14:00:30", 1795820400.0 - 10 * 3600 + 30),
    ("yesterday", 1795820400.0 - 86400),
    ("08:30", 1795820400.0 + 8.5 * 3600),
    ("2026-11-27", 1795820400.0 - 86400),
    ("2026-11-27T14:00", 1795820400.0 - 10 * 3600),
    ("2026-11-27 14:00:05.5", 1795820400.0 - 10 * 3600 + 5.5),
    ("2026-11-27T14:00Z", 1795820400.0 - 10 * 3600 + 3600),
    ("2026-11-27T14:00+01:00", 1795820400.0 - 10 * 3600),
    ("2026-07-01T12:00", 1782900000.0),         # summer time in Paris: UTC+2
])
def test_parse_time(text, expected):
    assert parse_time(text, NOW, PARIS) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["", "  ", "tomorrow", "25:00", "today 8", "2h later", "yesterday 14:00 x",
                                  "2026-13-01", "-2h", "h", "last tuesday"])
def test_bad_times_say_what_is_accepted(text):
    with pytest.raises(SpectareError, match=r"cannot read .* as a time: use now, 2h or 2h ago, today 08:30"):
        parse_time(text, NOW, PARIS)


def test_times_without_zone_are_the_systems_local_time():
    assert parse_time("2026-11-27T14:00", NOW) == pytest.approx(
        __import__("datetime").datetime(2026, 11, 27, 14, 0).timestamp())


@pytest.mark.parametrize(("sql", "kept"), [
    ("SELECT 1", "SELECT 1"),
    ("  select * from detections;  ", "select * from detections"),
    ("WITH a AS (SELECT 1) SELECT * FROM a", "WITH a AS (SELECT 1) SELECT * FROM a"),
    ("FROM chunks", "FROM chunks"),
    ("DESCRIBE detections", "DESCRIBE detections"),
    ("SHOW TABLES", "SHOW TABLES"),
    ("SUMMARIZE chunks", "SUMMARIZE chunks"),
    ("VALUES (1), (2)", "VALUES (1), (2)"),
    ("SELECT 1 UNION ALL SELECT 2", "SELECT 1 UNION ALL SELECT 2"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
     "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r"),
    ("SELECT 'DELETE FROM chunks' AS text", "SELECT 'DELETE FROM chunks' AS text"),
])
def test_reading_statements_pass(sql, kept):
    assert check_sql(sql) == kept


@pytest.mark.parametrize(("sql", "why"), [
    ("", "no SQL statement given"),
    ("INSERT INTO chunks VALUES (1)", "refused a INSERT statement"),
    ("UPDATE chunks SET key = 'x'", "refused a UPDATE statement"),
    ("DELETE FROM chunks", "refused a DELETE statement"),
    ("DROP TABLE chunks", "refused a DROP statement"),
    ("CREATE TABLE x AS SELECT 1", "refused a CREATE statement"),
    ("ALTER TABLE chunks ADD COLUMN x INT", "refused a ALTER statement"),
    ("ATTACH 'x.duckdb'", "refused a ATTACH statement"),
    ("DETACH x", "refused a DETACH statement"),
    ("COPY chunks TO 'x.csv'", "refused a COPY statement"),
    ("EXPORT DATABASE 'dir'", "refused a EXPORT statement"),
    ("PRAGMA version", "refused a PRAGMA statement"),
    ("SET threads = 1", "refused a SET statement"),
    ("CALL pragma_version()", "refused a CALL statement"),
    ("CHECKPOINT", "refused a CALL statement"),
    ("LOAD httpfs", "refused a LOAD statement"),
    ("INSTALL httpfs", "refused a"),
    ("BEGIN TRANSACTION", "refused a TRANSACTION statement"),
    ("EXPLAIN ANALYZE DELETE FROM chunks", "refused a EXPLAIN statement"),
    ("PIVOT detections ON label", "refused a"),
    ("SELECT 1; SELECT 2", "one statement at a time: got 2"),
    ("SELECT 1; DELETE FROM chunks", "one statement at a time: got 2"),
    ("WITH x AS (DELETE FROM chunks RETURNING *) SELECT * FROM x", "containing DELETE"),
    ("WITH x AS (INSERT INTO chunks VALUES (1) RETURNING *) SELECT * FROM x", "containing INSERT"),
    ("WITH x AS (UPDATE chunks SET key = '' RETURNING *) SELECT * FROM x", "containing UPDATE"),
    ("SELECT (WITH x AS (DELETE FROM chunks RETURNING 1) SELECT count(*) FROM x)", "containing DELETE"),
    ("DESCRIBE WITH x AS (DELETE FROM chunks RETURNING key) SELECT key FROM x", "containing DELETE"),
    ("SELEKT 1", "cannot parse the query"),
])
def test_anything_but_one_reading_statement_is_refused(sql, why):
    with pytest.raises(QueryRefused, match=why):
        check_sql(sql)


@pytest.mark.parametrize(("value", "safe"), [
    (None, None), (True, True), (3, 3), (2**70, str(2**70)), (1.5, 1.5), (math.nan, "nan"), (math.inf, "inf"),
    (__import__("decimal").Decimal("1.25"), 1.25), (b"\x00\xff", "AP8="), ([1, (2, None)], [1, [2, None]]),
    ({"a": {1: b""}}, {"a": {"1": ""}}),
])
def test_json_safe_values(value, safe):
    assert json_safe(value) == safe


# -- the incident rule --------------------------------------------------------------------------------

def _incidents(detections: list[tuple], **filters) -> list[tuple]:
    con = duckdb.connect()
    con.execute(DDL)
    for i, (camera, label, t, score, *snap) in enumerate(detections):
        con.execute("INSERT INTO detections VALUES (?, ?, ?, 0, ?, 0, 0, 1, 1, 'm', 's', ?, 0, ?, NULL, ?)",
                    [camera, t, label, score, i, snap[0] if snap else f"snap{i}", i])
    options = {"start": 0.0, "end": 1e6, "merge_gap_s": 30.0, "limit": 100, **filters}
    found, total = find_incidents(con, IncidentFilter(**options))
    keys = snapshot_keys(con, [row[6] for row in found])
    return [tuple(row[:6]) + (keys.get(row[6]), total) for row in found]


P, C = "person", "car"


@pytest.mark.parametrize(("detections", "filters", "expected"), [
    # nothing
    ([], {}, []),
    # one detection: an incident of one
    ([("a", P, 10, 0.5)], {}, [("a", P, 10, 10, 1, 0.5, "snap0", 1)]),
    # consecutive closer than the gap merge, even when the whole is longer than the gap
    ([("a", P, 0, 0.5), ("a", P, 20, 0.9), ("a", P, 45, 0.6)], {},
     [("a", P, 0, 45, 3, 0.9, "snap1", 1)]),
    # exactly the gap apart: two incidents (closer than, not as close as); newest first
    ([("a", P, 0, 0.5), ("a", P, 30, 0.6)], {},
     [("a", P, 30, 30, 1, 0.6, "snap1", 2), ("a", P, 0, 0, 1, 0.5, "snap0", 2)]),
    # another label or camera never merges
    ([("a", P, 0, 0.5), ("a", C, 1, 0.6), ("b", P, 2, 0.7)], {},
     [("b", P, 2, 2, 1, 0.7, "snap2", 3), ("a", C, 1, 1, 1, 0.6, "snap1", 3), ("a", P, 0, 0, 1, 0.5, "snap0", 3)]),
    # several detections of one keyframe (same time) count each
    ([("a", P, 5, 0.5), ("a", P, 5, 0.8), ("a", P, 5, 0.7)], {}, [("a", P, 5, 5, 3, 0.8, "snap1", 1)]),
    # the best detection without a snapshot: the best one with a snapshot is shown
    ([("a", P, 0, 0.9, None), ("a", P, 1, 0.6, "x")], {}, [("a", P, 0, 1, 2, 0.9, "x", 1)]),
    # filters: camera, label, minimum score (a low score in between no longer bridges the gap), range
    ([("a", P, 0, 0.9), ("b", P, 1, 0.9)], {"camera": "b"}, [("b", P, 1, 1, 1, 0.9, "snap1", 1)]),
    ([("a", P, 0, 0.9), ("a", C, 1, 0.9)], {"label": C}, [("a", C, 1, 1, 1, 0.9, "snap1", 1)]),
    ([("a", P, 0, 0.9), ("a", P, 25, 0.2), ("a", P, 50, 0.8)], {"min_score": 0.5},
     [("a", P, 50, 50, 1, 0.8, "snap2", 2), ("a", P, 0, 0, 1, 0.9, "snap0", 2)]),
    ([("a", P, 0, 0.9), ("a", P, 20, 0.9), ("a", P, 40, 0.9)], {"start": 10.0, "end": 30.0},
     [("a", P, 20, 20, 1, 0.9, "snap1", 1)]),
    # another merge gap
    ([("a", P, 0, 0.9), ("a", P, 20, 0.9)], {"merge_gap_s": 10.0},
     [("a", P, 20, 20, 1, 0.9, "snap1", 2), ("a", P, 0, 0, 1, 0.9, "snap0", 2)]),
    # the limit keeps the latest (by start); total counts all
    ([("a", P, 0, 0.9), ("a", P, 100, 0.9), ("a", P, 200, 0.9)], {"limit": 2},
     [("a", P, 200, 200, 1, 0.9, "snap2", 3), ("a", P, 100, 100, 1, 0.9, "snap1", 3)]),
    # ... and an incident that began earlier and goes on past the latest start is left out whole, not cut
    ([("b", C, t, 0.5) for t in range(0, 130, 20)] + [("a", P, 100, 0.9)], {"limit": 1},
     [("a", P, 100, 100, 1, 0.9, "snap7", 2)]),
    ([("b", C, t, 0.5) for t in range(0, 130, 20)] + [("a", P, 100, 0.9)], {"limit": 2},
     [("a", P, 100, 100, 1, 0.9, "snap7", 2), ("b", C, 0, 120, 7, 0.5, "snap0", 2)]),
])
def test_incident_rule(detections, filters, expected):
    assert _incidents(detections, **filters) == expected


# -- messages to rows -----------------------------------------------------------------------------------

NAMES = Names("")
SEG = Segment(camera="a", bucket="b", key="k", session="s", first_seq=0, last_seq=9, start=100.0, end=110.0,
              frames=10, bytes=5, codec="h264", width=2, height=2)
DET = Detection(camera="a", time=105.0, label="person", class_id=0, score=0.9, box=(0, 0, 1, 1), model="m",
                session="s", seq=30)


@pytest.mark.parametrize(("subject", "data", "kind"), [
    ("footage.a", b"\xc1", "garbage"),
    ("footage.a", b"\x81\xa4kind\xa6future", "unknown"),
    ("footage.a", DET.encode(), "unknown"),
    ("footage.a", SEG.encode().replace(b"\xa1v\x01", b"\xa1v\x07"), "garbage"),
    ("footage.b", SEG.encode(), "inconsistent"),
    ("detections.a.person", SEG.encode(), "inconsistent"),
    ("footage.a", SEG.model_copy(update={"end": 99.0}).encode(), "inconsistent"),
    ("footage.a", SEG.model_copy(update={"start": math.inf}).encode(), "inconsistent"),
    ("footage.a", SEG.model_copy(update={"bytes": 2**63}).encode(), "inconsistent"),
    ("footage.a", Gap(camera="a", start=math.nan, reason="x").encode(), "inconsistent"),
])
def test_footage_messages_that_cannot_be_indexed(subject, data, kind):
    found = footage_row(subject, data, NAMES)
    assert isinstance(found, Rejected) and found.kind == kind, found


@pytest.mark.parametrize(("subject", "data", "kind"), [
    ("detections.a.person", b"", "garbage"),
    ("detections.a.person", SEG.encode(), "unknown"),
    ("detections.a.car", DET.encode(), "inconsistent"),
    ("detections.b.person", DET.encode(), "inconsistent"),
    ("detections.a.person", DET.model_copy(update={"time": math.inf}).encode(), "inconsistent"),
    ("detections.a.person", DET.model_copy(update={"seq": 2**63}).encode(), "inconsistent"),
    ("detections.a.person", DET.model_copy(update={"index": 2**31}).encode(), "inconsistent"),
])
def test_detection_messages_that_cannot_be_indexed(subject, data, kind):
    found = detection_row(subject, data, None, NAMES)
    assert isinstance(found, Rejected) and found.kind == kind, found


# A detection as detectors wrote it before Detection.index existed: no `index` key at all.
OLD_DET = msgpack.packb({k: v for k, v in unpack_message(DET.encode()).items() if k != "index"}, use_bin_type=True)


@pytest.mark.parametrize(("msg_id", "index"), [
    ("a:s:30:0", 0), ("a:s:30:7", 7), (None, None), ("", None), ("a:s:31:0", None), ("b:s:30:0", None),
    ("a:s:30:x", None), ("a:s:30:-1", None), ("a:s:30:007", None), ("a:s:30:99999999999", None),
])
def test_an_old_detections_index_comes_from_its_message_id(msg_id, index):
    assert detection_index(DET, msg_id) == index
    assert footage_row("footage.a", SEG.encode(), NAMES) == SEG
    assert detection_row("detections.a.person", DET.encode(), msg_id, NAMES) == (DET, index)
    assert detection_row("detections.a.person", OLD_DET, msg_id, NAMES) == (DET, index)


@pytest.mark.parametrize("msg_id", [None, "a:s:30:3", "a:s:30:0", "b:x:1:9", "garbage"])
def test_a_detections_index_is_its_field_when_it_has_one(msg_id):
    det = DET.model_copy(update={"index": 3})
    assert detection_row("detections.a.person", det.encode(), msg_id, NAMES) == (det, 3)


@pytest.mark.parametrize(("name", "msg_id", "index"), [
    ("detection-v1", None, 2), ("detection-v1", "porch:1a-0:30:2", 2),
    ("detection-v1-before-index", "porch:1a-0:30:2", 2), ("detection-v1-before-index", None, None),
])
def test_stored_detections_index(name, msg_id, index):  # the golden bytes: today's and those written before
    found = detection_row("detections.porch.traffic_light", (GOLDEN / f"{name}.msgpack").read_bytes(), msg_id, NAMES)
    assert not isinstance(found, Rejected) and found[1] == index, found


# -- the writer ------------------------------------------------------------------------------------------

def _segment(start: float, end: float, key: str, camera: str = "a") -> Segment:
    return SEG.model_copy(update={"camera": camera, "start": start, "end": end, "key": key})


def _detection(t: float, seq: int, camera: str = "a") -> Detection:
    return DET.model_copy(update={"camera": camera, "time": t, "seq": seq})


def _batch(*items) -> Batch:
    batch = Batch()
    for stream_seq, item, *index in items:
        if isinstance(item, Segment):
            batch.add_segment(item, stream_seq)
            batch.taken("FOOTAGE", stream_seq)
        elif isinstance(item, Gap):
            batch.add_gap(item, stream_seq)
            batch.taken("FOOTAGE", stream_seq)
        else:
            batch.add_detection(item, index[0] if index else 0, stream_seq)
            batch.taken("DETECTIONS", stream_seq)
    return batch


def _tables(con) -> dict[str, list]:
    return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in ("chunks", "gaps", "detections")}


@pytest.fixture
def db(tmp_path: Path):
    con = open_database(tmp_path / "index.duckdb")
    yield con
    con.close()


def test_chunk_links_do_not_depend_on_which_came_first(tmp_path):
    chunks = [(1, _segment(100, 110, "k1")), (2, _segment(110, 120, "k2"))]
    detections = [(1, _detection(100, 0)), (2, _detection(109.999, 1)), (3, _detection(110, 2)),
                  (4, _detection(121, 3)), (5, _detection(105, 4, camera="b"))]
    results = []
    for name, order in (("chunks first", [chunks, detections]), ("detections first", [detections, chunks]),
                        ("one batch", [chunks + detections])):
        con = open_database(tmp_path / f"{name}.duckdb")
        writer = IndexWriter(con)
        for items in order:
            writer.commit(_batch(*items))
        links = con.execute("SELECT time, camera, chunk_key FROM detections ORDER BY time, camera").fetchall()
        assert links == [(100, "a", "k1"), (105, "b", None), (109.999, "a", "k1"), (110, "a", "k2"),
                         (121, "a", None)], name
        results.append(_tables(con))
        con.close()
    assert results[0] == results[1] == results[2]


def test_replayed_and_duplicated_messages_change_nothing(db):
    writer = IndexWriter(db)
    batch = _batch((1, _segment(100, 110, "k1")), (2, _segment(100, 110, "k1")),  # announced twice
                   (3, Gap(camera="a", start=110, end=None, reason="away")),
                   (1, _detection(105, 0)), (2, _detection(105, 0)),              # published twice
                   (3, _detection(105, 0), 1))                                    # a second finding, same keyframe
    first = writer.commit(batch)
    assert (first.chunks, first.gaps, first.detections, first.linked) == (1, 1, 2, 2)
    tables = _tables(db)
    again = writer.commit(batch)
    assert (again.chunks, again.detections, again.linked) == (0, 0, 0)
    assert _tables(db) == tables
    assert writer.positions()["DETECTIONS"].last_seq == 3


@pytest.mark.parametrize("order", [("open", "closed"), ("closed", "open"), ("both",)])
def test_a_gap_announced_open_then_closed_is_one_closed_row(db, order):
    writer = IndexWriter(db)
    announced = {"open": (5, Gap(camera="a", start=110, end=None, reason="away", session="s")),
                 "closed": (6, Gap(camera="a", start=110, end=130, reason="back", session="s"))}
    for step in order:
        items = [announced["open"], announced["closed"]] if step == "both" else [announced[step]]
        writer.commit(_batch(*items))
    assert db.execute("SELECT camera, start_time, end_time, reason, stream_seq FROM gaps").fetchall() == [
        ("a", 110, 130, "back", 6)]


def test_overlapping_chunks_link_to_the_latest_starting_one_in_any_order(tmp_path):
    keys = []
    for name, order in (("a", ["x", "y"]), ("b", ["y", "x"])):
        con = open_database(tmp_path / f"{name}.duckdb")
        writer = IndexWriter(con)
        writer.commit(_batch((1, _detection(105, 0))))
        made = {"x": (1, _segment(100, 110, "x")), "y": (2, _segment(104, 108, "y"))}
        for key in order:
            writer.commit(_batch(made[key]))
        keys.append(con.execute("SELECT chunk_key FROM detections").fetchall())
        con.close()
    assert keys == [[("y",)], [("y",)]]


def test_cameras_follow_the_registry_by_revision(db):
    writer = IndexWriter(db)
    porch = CameraConfig(name="porch", url="rtsp://u:secret@h/1", friendly_name="Porch")
    writer.commit(Batch(), [CameraUpdate("porch", porch, 5, 1.0)])
    writer.commit(Batch(), [CameraUpdate("porch", porch.model_copy(update={"friendly_name": "old"}), 4, 0.5)])
    assert db.execute("SELECT name, friendly_name, url, removed_at FROM cameras").fetchall() == [
        ("porch", "Porch", "rtsp://u:***@h/1", None)]
    writer.commit(Batch(), [CameraUpdate("porch", porch, 7, 9.0, removed=True),
                            CameraUpdate("gone", None, 8, 10.0, removed=True)])
    assert db.execute("SELECT name, friendly_name, removed_at FROM cameras ORDER BY name").fetchall() == [
        ("gone", "", 10.0), ("porch", "Porch", 9.0)]
    writer.commit(Batch(), [CameraUpdate("porch", porch, 9, 11.0)])
    assert db.execute("SELECT removed_at FROM cameras WHERE name = 'porch'").fetchall() == [(None,)]


def test_a_failed_commit_leaves_nothing_behind(db):
    writer = IndexWriter(db)
    writer.commit(_batch((1, _detection(105, 0))))
    before = _tables(db)
    db.execute("ALTER TABLE detections ADD COLUMN extra INTEGER NOT NULL DEFAULT 0")  # the insert now fails
    with pytest.raises(duckdb.Error):
        writer.commit(_batch((2, _segment(100, 110, "k1")), (2, _detection(106, 1))))
    db.execute("ALTER TABLE detections DROP COLUMN extra")
    assert _tables(db) == before and writer.positions()["DETECTIONS"].last_seq == 1
    assert "FOOTAGE" not in writer.positions()


def test_an_index_of_another_schema_version_is_refused(tmp_path):
    con = open_database(tmp_path / "x.duckdb")
    con.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(SpectareError, match="has schema v0, this Spectare uses v1: stop the indexer and delete"):
        open_database(tmp_path / "x.duckdb")


@pytest.mark.parametrize("key", ["footage/cam/2026/11/27/08/20261127T083001.000Z-3-0-0.mp4",
                                 "footage/c/20261127T083001.000Z-a%3Ab~c-1.mp4", "snapshots/a b/ü+&=?.jpg"])
@pytest.mark.parametrize("endpoint", ["127.0.0.1:9000", "https://s3.example.net", "minio.lan:443"])
def test_presigned_urls_are_minios_byte_for_byte(key, endpoint):
    from datetime import UTC, datetime

    from spectare.core.config import load_settings
    from spectare.indexer.queries import Presigner
    from spectare.indexer.settings import IndexerSettings

    settings = load_settings(s3={"endpoint": "10.0.0.1:9000", "access_key": "AK/ID", "secret_key": "s3cr+t/~",
                                 "secure": endpoint.startswith("https"), "bucket": "footage-bucket"})
    presigner = Presigner(settings, IndexerSettings(presign_endpoint=endpoint, presign_expiry_s=900))
    assert presigner.own_signing
    at = datetime(2026, 11, 27, 23, 59, 59, tzinfo=UTC)
    expected = presigner.client.presigned_get_object("footage-bucket", key, expires=presigner.expiry, request_date=at)
    assert presigner.url(key, at=at) == expected
    assert presigner.url(key, at=at.replace(day=28)) != expected, "signed per day"


# -- query messages and subjects --------------------------------------------------------------------------

def _query_examples():
    from spectare.schemas.queries import (
        ChunkRef,
        ChunksRequest,
        ChunksResponse,
        FootageAtRequest,
        FootageAtResponse,
        GapRef,
        Incident,
        SearchRequest,
        SearchResponse,
        SqlRequest,
        SqlResponse,
        StatusRequest,
        StatusResponse,
        StreamProgress,
    )
    chunk = ChunkRef(camera="a", key="footage/a/x.mp4", start=1.0, end=11.0, bytes=5, url="http://s3/x")
    gap = GapRef(camera="a", start=11.0, end=None, reason="away")
    return [
        SearchRequest(start=0.0, end=1.0),
        SearchRequest(camera="a", label="Traffic light", start=0.0, end=1.0, min_score=0.5, limit=3),
        SearchResponse(incidents=(Incident(camera="a", label="person", start=1.0, end=2.0, detections=2,
                                           max_score=0.9, snapshot_key=None, snapshot_url=None, chunks=(chunk,)),),
                       total=1, merge_gap_s=30.0),
        FootageAtRequest(camera="a", time=5.0),
        FootageAtResponse(camera="a", time=5.0, found="chunk", chunk=chunk, offset=4.0),
        FootageAtResponse(camera="a", time=15.0, found="gap", gap=gap),
        ChunksRequest(camera="a", start=0.0, end=20.0, limit=10),
        ChunksResponse(chunks=(chunk,), gaps=(gap,), truncated=False),
        SqlRequest(sql="SELECT 1", max_rows=5),
        SqlResponse(columns=("a", "b"), types=("INTEGER", "VARCHAR"), rows=((1, "x"), (None, [1, 2])),
                    truncated=True, elapsed_s=0.001),
        StatusRequest(),
        StatusResponse(database="/x.duckdb", tables={"chunks": 1}, streams=(StreamProgress(
            stream="FOOTAGE", last_seq=3, messages=3, garbage=0),), latest_chunk_end=None, latest_detection=2.0),
    ]


@pytest.mark.parametrize("message", _query_examples(), ids=lambda m: type(m).__name__)
def test_query_messages_round_trip(message):
    decoded = type(message).decode(message.encode())
    assert decoded.model_dump(mode="json") == message.model_dump(mode="json")


@pytest.mark.parametrize(("fields", "error"), [
    ({"start": 2.0, "end": 1.0}, "end is before start"),
    ({"start": math.nan, "end": 1.0}, "finite"),
    ({"start": 0.0, "end": 1.0, "camera": "Bad Name"}, "invalid camera name"),
    ({"start": 0.0, "end": 1.0, "min_score": 1.5}, "min_score"),
    ({"start": 0.0, "end": 1.0, "limit": 0}, "limit"),
])
def test_bad_search_requests_are_one_line_schema_errors(fields, error):
    from spectare.core.errors import SchemaError
    from spectare.schemas.queries import SearchRequest
    with pytest.raises(SchemaError, match=error):
        SearchRequest.create(**fields)


@pytest.mark.parametrize(("prefix", "subject", "service"), [
    ("", "index.search", "spectare_index"), ("site-1", "site-1.index.search", "site-1_spectare_index"),
])
def test_query_subjects_follow_the_prefix(prefix, subject, service):
    names = Names(prefix)
    assert (names.index("search"), names.index_service) == (subject, service)
    with pytest.raises(SpectareError):
        names.index("*")
