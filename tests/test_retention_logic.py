"""Retention planning on a real (in-memory) DuckDB with the index's tables: which chunks and detections a
sweep deletes, per camera policy, event footage and byte caps; and the row side of a sweep."""

import duckdb
import pytest

from spectare.indexer.retention import QUEUE_DDL, plan, policy_table, queue_and_delete_rows
from spectare.indexer.settings import IndexerSettings
from spectare.indexer.tables import DDL
from spectare.schemas import CameraConfig

DAY = 86_400.0
NOW = 1_800_000_000.0
IX = IndexerSettings(keep_days=2, keep_event_days=5, max_gb=None, event_padding_s=10)


def index(chunks: list[tuple], detections: list[tuple]) -> duckdb.DuckDBPyConnection:
    """chunks: (camera, key, start days ago, bytes); each chunk lasts 10 s. detections: (camera, days ago)."""
    con = duckdb.connect(":memory:")
    con.execute(DDL)
    con.execute(QUEUE_DDL)
    for seq, (camera, key, ago, size) in enumerate(chunks, 1):
        start = NOW - ago * DAY
        con.execute("INSERT INTO chunks VALUES (?, ?, ?, ?, 'b', 's', 0, 9, 10, ?, 'h264', 64, 64, ?)",
                    [camera, start, start + 10, key, size, seq])
    for seq, (camera, ago) in enumerate(detections, 1000):
        t = NOW - ago * DAY
        con.execute("INSERT INTO detections VALUES (?, ?, 'person', 0, 0.9, 0, 0, 1, 1, 'm', 's', ?, 0, ?, NULL, ?)",
                    [camera, t, seq, f"snapshots/{camera}/{seq}.jpg", seq])
    return con


def cam(name: str, **fields) -> CameraConfig:
    return CameraConfig(name=name, url=f"rtsp://x/{name}", **fields)


@pytest.mark.parametrize(
    ("cameras", "chunks", "detections", "deleted"),
    [
        # plain footage: kept 2 days
        ([cam("a")], [("a", "new", 1, 10), ("a", "old", 3, 10)], [], {"old": "age"}),
        # footage around a detection: kept 5 days (the detection sits 5 s after the chunk ends: within padding)
        ([cam("a")], [("a", "event", 3, 10), ("a", "plain", 3.5, 10), ("a", "ancient", 6, 10)],
         [("a", 3 - 15 / DAY)], {"plain": "age", "ancient": "age"}),
        # a camera's own policy wins over the defaults
        ([cam("a", keep_days=10.0), cam("b")], [("a", "a-old", 3, 10), ("b", "b-old", 3, 10)], [], {"b-old": "age"}),
        # byte cap: the oldest plain footage goes first, then the oldest event footage
        ([cam("a", max_gb=30e-9)], [("a", "p1", 0.1, 10), ("a", "p2", 0.2, 10), ("a", "e1", 0.3, 10),
                                    ("a", "p3", 0.4, 10)], [("a", 0.3 - 5 / DAY)], {"p2": "size", "p3": "size"}),
        ([cam("a", max_gb=5e-9)], [("a", "p1", 0.1, 10), ("a", "e1", 0.3, 10)], [("a", 0.3 - 5 / DAY)],
         {"p1": "size", "e1": "size"}),
        # a removed camera (no registry entry) follows the defaults
        ([], [("gone", "g-old", 3, 10), ("gone", "g-new", 1, 10)], [], {"g-old": "age"}),
    ],
)
def test_plan_deletes_what_the_policy_says(cameras, chunks, detections, deleted):
    con = index(chunks, detections)
    doomed, _ = plan(con.cursor(), policy_table(cameras, IX), IX, NOW)
    assert {key: reason for _cam, key, _bucket, _bytes, _seq, reason in doomed} == deleted


def test_detections_expire_with_event_retention_and_rows_go_in_one_step():
    con = index([("a", "kept", 1, 10), ("a", "old", 4, 10)], [("a", 1), ("a", 4), ("a", 6)])
    chunks, detections = plan(con.cursor(), policy_table([cam("a")], IX), IX, NOW)
    assert chunks == [], "the chunk 4 days old holds a detection: event footage, kept 5 days"
    assert [d[1] for d in detections] == ["snapshots/a/1002.jpg"], "only the one beyond 5 days"
    queue_and_delete_rows(con.cursor(), chunks, detections, "FOOTAGE", "DETECTIONS", NOW)
    assert con.execute("SELECT count(*) FROM detections").fetchone()[0] == 2
    queued = con.execute("SELECT kind, key, stream FROM retention_queue ORDER BY kind").fetchall()
    assert ("message", None, "DETECTIONS") in queued and ("snapshot", "snapshots/a/1002.jpg", None) in queued


def test_a_deleted_chunk_unlinks_its_detections_and_is_queued():
    con = index([("a", "old", 3, 10)], [])
    con.execute("INSERT INTO detections VALUES ('a', ?, 'car', 2, 0.9, 0, 0, 1, 1, 'm', 's', 1, 0, NULL, 'old', 7)",
                [NOW - 3 * DAY + 100])  # 100 s later: outside the padding, so the chunk is plain footage
    chunks, detections = plan(con.cursor(), policy_table([cam("a")], IX), IX, NOW)
    assert [c[1] for c in chunks] == ["old"] and detections == []
    queue_and_delete_rows(con.cursor(), chunks, detections, "FOOTAGE", "DETECTIONS", NOW)
    assert con.execute("SELECT count(*) FROM chunks").fetchone()[0] == 0
    assert con.execute("SELECT chunk_key FROM detections").fetchall() == [(None,)], "no row points at it"
    assert con.execute("SELECT kind, key, stream, stream_seq FROM retention_queue").fetchall() == [
        ("chunk", "old", "FOOTAGE", 1)]
