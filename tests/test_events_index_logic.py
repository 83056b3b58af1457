"""The events side of the index, no servers: ObjectEvent -> row checks, the writer's merge of an object's
messages (any order, any number of times) into one row, the event search's filters, incidents kept only where
no events exist, and retention of events, on real DuckDB files / in-memory databases, table-driven."""

import itertools

import duckdb
import pytest

from spectare.core.errors import ConfigError
from spectare.indexer.events import EventFilter, find_events
from spectare.indexer.incidents import IncidentFilter, find_incidents
from spectare.indexer.mqtt import check_prefix, is_stale, mqtt_subject
from spectare.indexer.retention import QUEUE_DDL, plan, plan_events, policy_table, queue_and_delete_rows
from spectare.indexer.rows import Batch, Rejected, event_row
from spectare.indexer.settings import IndexerSettings
from spectare.indexer.tables import DDL, open_database
from spectare.indexer.writer import IndexWriter
from spectare.schemas import CameraConfig, Detection, Names, ObjectEvent

T0 = 1_795_845_752.0
NAMES = Names()


def event(type_: str, seq: int, t: float, *, object_id: str = "s1-1", camera: str = "street", label: str = "car",
          score: float = 0.6, snapshot: str | None = None, zones: tuple[str, ...] = (),
          entered: tuple[str, ...] = (), stationary: bool = False, first_seen: float = T0) -> ObjectEvent:
    return ObjectEvent(type=type_, camera=camera, object_id=object_id, seq=seq, label=label, time=t,
                       first_seen=first_seen, last_seen=t if type_ != "end" else t - 5, top_score=score,
                       box=(0.1, 0.2, 0.3, 0.4 + seq / 100), snapshot_key=snapshot, zones=zones,
                       entered_zones=entered, stationary=stationary, session="s1", keyframe_seq=10 * seq)


# A parked car's life: new, a better snapshot in the drive, stationary, end.
LIFE = [
    event("new", 0, T0 + 2, score=0.6),
    event("update", 1, T0 + 4, score=0.9, snapshot="snap/1.jpg", zones=("drive",), entered=("drive",)),
    event("update", 2, T0 + 30, score=0.9, zones=("drive",), entered=("drive",), stationary=True),
    event("end", 3, T0 + 600, score=0.9, entered=("drive",), stationary=True),
]
WHOLE = ("street", "s1-1", "car", T0, T0 + 595, 0.9, "snap/1.jpg", [], ["drive"], True, T0 + 600, 3)  # zones: now


def merged(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT camera, object_id, label, first_seen, last_seen, top_score, snapshot_key, zones, "
                       "entered_zones, stationary, ended_at, seq FROM events ORDER BY camera, object_id").fetchall()


def write(writer: IndexWriter, messages: list[tuple[ObjectEvent, int]]) -> None:
    batch = Batch()
    for message, stream_seq in messages:
        batch.add_event(message, stream_seq)
    writer.commit(batch)


@pytest.mark.parametrize("order", [
    [0, 1, 2, 3],          # as published
    [3, 2, 1, 0],          # backwards (two replicas, a redelivery after a crash)
    [0, 2, 1, 3, 1, 0],    # some twice
])
@pytest.mark.parametrize("per_batch", [1, 2, 6])
def test_an_objects_messages_merge_into_one_row_whatever_the_order_and_repeats(tmp_path, order, per_batch):
    con = open_database(tmp_path / "index.duckdb")
    writer = IndexWriter(con)
    messages = [(LIFE[i], 100 + i) for i in order]
    for start in range(0, len(messages), per_batch):
        write(writer, messages[start:start + per_batch])
    assert merged(con) == [WHOLE]
    assert con.execute("SELECT stream_seqs, stream_seq FROM events").fetchall() == [([100, 101, 102, 103], 103)]


def test_a_later_snapshotless_message_keeps_the_best_snapshot_and_objects_stay_apart(tmp_path):
    con = open_database(tmp_path / "index.duckdb")
    writer = IndexWriter(con)
    write(writer, [(LIFE[1], 1), (event("new", 0, T0 + 1, object_id="s1-2", label="person"), 2)])
    write(writer, [(LIFE[2], 3)])
    rows = merged(con)
    assert [(r[1], r[6], r[9], r[10]) for r in rows] == [("s1-1", "snap/1.jpg", True, None),
                                                         ("s1-2", None, False, None)]


@pytest.mark.parametrize(("subject", "data", "problem"), [
    ("events.street.car", LIFE[0].encode(), None),
    ("events.street.car", b"\xc1", "garbage"),
    ("events.street.car", Detection(camera="street", time=T0, label="car", class_id=2, score=0.5,
                                    box=(0, 0, 1, 1), model="m", session="s", seq=1).encode(), "unknown"),
    ("events.porch.car", LIFE[0].encode(), "inconsistent"),
    ("events.street.person", LIFE[0].encode(), "inconsistent"),
])
def test_event_messages_become_rows_or_say_why_not(subject, data, problem):
    row = event_row(subject, data, NAMES)
    if problem is None:
        assert row == LIFE[0]
    else:
        assert isinstance(row, Rejected) and row.kind == problem


def search_db(tmp_path) -> duckdb.DuckDBPyConnection:
    con = open_database(tmp_path / "index.duckdb")
    writer = IndexWriter(con)
    seqs = itertools.count(1)
    write(writer, [(m, next(seqs)) for m in LIFE])  # street car s1-1: T0..T0+595, entered drive, 0.9
    write(writer, [(event("new", 0, T0 + 100, object_id="s1-2", label="person", score=0.7, first_seen=T0 + 90,
                          entered=("path",), zones=("path",)), next(seqs)),
                   (event("new", 0, T0 + 1000, object_id="p-1", camera="porch", label="person", score=0.5,
                          first_seen=T0 + 1000), next(seqs))])
    return con


@pytest.mark.parametrize(("wanted", "found", "total"), [
    (EventFilter(T0 - 10, T0 + 2000, 10), ["p-1", "s1-2", "s1-1"], 3),
    (EventFilter(T0 + 300, T0 + 400, 10), ["s1-1"], 1),              # overlaps the parked car's range only
    (EventFilter(T0 - 10, T0 + 2000, 1), ["p-1"], 3),                # the latest by first_seen
    (EventFilter(T0 - 10, T0 + 2000, 10, camera="street"), ["s1-2", "s1-1"], 2),
    (EventFilter(T0 - 10, T0 + 2000, 10, label="person"), ["p-1", "s1-2"], 2),
    (EventFilter(T0 - 10, T0 + 2000, 10, zone="drive"), ["s1-1"], 1),
    (EventFilter(T0 - 10, T0 + 2000, 10, zone="garden"), [], 0),
    (EventFilter(T0 - 10, T0 + 2000, 10, min_score=0.65), ["s1-2", "s1-1"], 2),
    (EventFilter(T0 + 2000, T0 + 3000, 10), [], 0),
])
def test_event_search_filters(tmp_path, wanted, found, total):
    rows, count = find_events(search_db(tmp_path).cursor(), wanted)
    assert ([r[1] for r in rows], count) == (found, total)


def test_incidents_outside_events_are_the_cameras_without_events_and_history_before_them(tmp_path):
    con = search_db(tmp_path)
    for i, (camera, t) in enumerate([("street", T0 - 500), ("street", T0 + 50), ("garage", T0 + 50)]):
        con.execute("INSERT INTO detections VALUES (?, ?, 'car', 2, 0.8, 0, 0, 1, 1, 'm', 's', ?, 0, NULL, NULL, ?)",
                    [camera, t, i, 1000 + i])
    wanted = IncidentFilter(T0 - 1000, T0 + 2000, 30.0, 10, outside_events=True)
    rows, _total = find_incidents(con.cursor(), wanted)
    assert sorted((r[0], r[2]) for r in rows) == [("garage", T0 + 50), ("street", T0 - 500)]
    everything, _ = find_incidents(con.cursor(), IncidentFilter(T0 - 1000, T0 + 2000, 30.0, 10))
    assert len(everything) == 3


def test_retention_deletes_old_events_their_messages_and_snapshots_and_keeps_their_footage_as_event_footage():
    day = 86_400.0
    now = T0 + 10 * day
    ix = IndexerSettings(keep_days=2, keep_event_days=5, event_padding_s=10)
    con = duckdb.connect(":memory:")
    con.execute(DDL)
    con.execute(QUEUE_DDL)
    for key, start in (("during-old", T0 + 100), ("plain", T0 + 3 * day), ("during-recent", T0 + 7 * day + 50)):
        con.execute("INSERT INTO chunks VALUES ('street', ?, ?, ?, 'b', 's', 0, 9, 10, 1, 'h264', 64, 64, 1)",
                    [start, start + 10, key])
    writer = IndexWriter(con)
    write(writer, [(m, 10 + i) for i, m in enumerate(LIFE)])  # ended 10 days ago: past keep_event_days
    write(writer, [(event("new", 0, T0 + 7 * day + 60, object_id="s2-1", snapshot="snap/2.jpg",
                          first_seen=T0 + 7 * day), 20)])
    policies = policy_table([CameraConfig(name="street", url="rtsp://x/")], ix)
    chunks, detections = plan(con.cursor(), policies, ix, now)
    assert {c[1] for c in chunks} == {"during-old", "plain"}, "footage during the recent object is event footage"
    doomed = plan_events(con.cursor(), policies, ix, now)
    assert [(d[0], d[1], list(d[2])) for d in doomed] == [("street", "snap/1.jpg", [10, 11, 12, 13])]
    queue_and_delete_rows(con.cursor(), chunks, detections, "FOOTAGE", "DETECTIONS", now, doomed, "EVENTS")
    assert con.execute("SELECT object_id FROM events").fetchall() == [("s2-1",)]
    queued = con.execute("SELECT kind, key, stream, stream_seq FROM retention_queue WHERE kind <> 'chunk' "
                         "ORDER BY kind, stream_seq").fetchall()
    assert queued == [("message", None, "EVENTS", s) for s in (10, 11, 12, 13)] + [("snapshot", "snap/1.jpg", None,
                                                                                    None)]


def test_mqtt_subjects_stay_out_of_the_events_stream():
    assert mqtt_subject("spectare", LIFE[0]) == "spectare.events.street.car"
    check_prefix("spectare", "")
    check_prefix("spectare", "site-a")
    with pytest.raises(ConfigError, match="mqtt_prefix"):
        check_prefix("site-a", "site-a")
    assert is_stale(LIFE[0], LIFE[0].time + 301, 300) and not is_stale(LIFE[0], LIFE[0].time + 299, 300)
