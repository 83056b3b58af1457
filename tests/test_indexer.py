"""The indexer against real NATS, S3 and DuckDB files, as a subprocess: real Segment, Gap and Detection messages
on the streams; rows, back-filled chunk links, replay rebuilding identical tables, garbage, search with
presigned URLs that download, footage at a moment, chunks of a range, the SQL guardrails, and the CLI."""

import asyncio
import io
import json
import time
import urllib.request
from pathlib import Path

import av
import pytest
from nats.js.errors import NotFoundError

from spectare.core.bus import connect
from spectare.core.errors import CameraNotFound
from spectare.core.indexclient import IndexClient, IndexQueryError, IndexUnavailable, QueryTimeout, wait_for_indexer
from spectare.core.registry import CameraRegistry
from spectare.core.store import ensure_bucket, s3_client
from spectare.local.testcam import make_test_clip
from spectare.schemas import CameraConfig, Detection, Gap, Segment, detection_id, gap_id, segment_id
from spectare.schemas.keys import chunk_key, snapshot_key

from .helpers import ServiceProcess, eventually, run_cli
from .media import source_video

T0 = float(int(time.time()) - 3600)  # an hour ago, on a whole second


@pytest.fixture(scope="session")
def chunk_clip(tmp_path_factory) -> bytes:
    """A real, small, playable MP4: what every test chunk key holds in S3."""
    path = make_test_clip(source_video(), tmp_path_factory.mktemp("indexer") / "chunk.mp4", width=160, height=90,
                          fps=5, gop_seconds=1, seconds=2)
    return path.read_bytes()


class Footage:
    """Publishes footage and detections the way the segmenter and the detector do (same keys, same Msg-Ids)."""

    def __init__(self, js, settings, clip: bytes) -> None:
        self.js = js
        self.settings = settings
        self.names = settings.names
        self.clip = clip
        self.s3 = s3_client(settings.s3)

    async def register(self, name: str) -> None:
        registry = await CameraRegistry.open(self.js, self.settings)
        await registry.put(CameraConfig(name=name, url=f"rtsp://admin:secret@192.0.2.1/{name}"))

    async def chunk(self, camera: str, start: float, end: float, session: str = "s1") -> Segment:
        first_seq = int((start - T0) * 10)
        key = chunk_key(camera, start, session, first_seq)
        await asyncio.to_thread(self.s3.put_object, self.settings.s3.bucket, key, io.BytesIO(self.clip),
                                len(self.clip), content_type="video/mp4")
        segment = Segment(camera=camera, bucket=self.settings.s3.bucket, key=key, session=session,
                          first_seq=first_seq, last_seq=first_seq + 9, start=start, end=end, frames=10,
                          bytes=len(self.clip), codec="h264", width=160, height=90)
        await self.publish(self.names.footage(camera), segment.encode(), segment_id(camera, session, first_seq))
        return segment

    async def gap(self, camera: str, start: float, end: float | None) -> Gap:
        gap = Gap(camera=camera, start=start, end=end, reason="camera unreachable", session="s1")
        await self.publish(self.names.footage(camera), gap.encode(), gap_id(camera, start, end))
        return gap

    async def detection(self, camera: str, t: float, label: str = "person", score: float = 0.8, index: int = 0,
                        session: str = "s1") -> Detection:
        seq = int((t - T0) * 10)
        detection = Detection(camera=camera, time=t, label=label, class_id=0 if label == "person" else 2,
                              score=score, box=(0.1, 0.2, 0.3, 0.4), model="yolov4-tiny", session=session, seq=seq,
                              index=index, snapshot_key=snapshot_key(camera, t, session, seq))
        await self.publish(self.names.detections(camera, label), detection.encode(),
                           detection_id(camera, session, seq, index))
        return detection

    async def publish(self, subject: str, data: bytes, msg_id: str | None = None) -> None:
        await self.js.publish(subject, data, headers={"Nats-Msg-Id": msg_id} if msg_id else None)


@pytest.fixture
async def footage(js, settings, chunk_clip):
    ensure_bucket(settings.s3)
    return Footage(js, settings, chunk_clip)


@pytest.fixture
async def nc(settings):
    client = await connect(settings, "test-index")
    yield client
    await client.close()


class Indexers:
    """Indexer subprocesses of one test, all stopped at its end."""

    def __init__(self, settings, tmp_path: Path) -> None:
        self.settings = settings
        self.tmp_path = tmp_path
        self.started: list[ServiceProcess] = []

    def __call__(self, database: Path | None = None, **env: str) -> ServiceProcess:
        env = {"SPECTARE_INDEXER__DATABASE": str(database or self.tmp_path / "index.duckdb"),
               "SPECTARE_INDEXER__FLUSH_INTERVAL_S": "0.1", **env}
        process = ServiceProcess("indexer", self.settings, self.tmp_path / f"indexer-{len(self.started)}.log",
                                 **env).start()
        self.started.append(process)
        return process


@pytest.fixture
def indexers(settings, tmp_path):
    started = Indexers(settings, tmp_path)
    yield started
    for process in started.started:
        process.stop()


async def indexed(nc, settings, chunks: int = 0, detections: int = 0, gaps: int = 0, garbage: int = 0,
                  timeout: float = 30):
    """Wait until the index holds these counts (and every message taken is committed)."""
    client = IndexClient(nc, settings)

    async def check():
        try:
            status = await client.status()
        except IndexUnavailable:
            return None
        tables = status.tables
        taken = sum(s.garbage for s in status.streams)
        ok = (tables["chunks"], tables["detections"], tables["gaps"], taken) == (chunks, detections, gaps, garbage)
        return status if ok else None

    return await eventually(check, timeout, what=f"{chunks} chunks, {detections} detections, {gaps} gaps, "
                                                  f"{garbage} garbage indexed")


async def scene(footage: Footage) -> dict:
    """Camera `porch`: chunks 0-10, 10-20, 20-30 s, a gap 30-60 s (announced open, then closed), chunk 60-70 s.
    People at 1, 5, 12 s (one incident) and 65 s (another); a car at 3 s. The detections at 65 s arrive before
    their chunk, as they do live (the detector is quicker than a 10 s chunk)."""
    await footage.register("porch")
    chunks = [await footage.chunk("porch", T0 + a, T0 + b) for a, b in ((0, 10), (10, 20), (20, 30))]
    await footage.gap("porch", T0 + 30, None)
    for t, score in ((1, 0.6), (5, 0.9), (12, 0.7)):
        await footage.detection("porch", T0 + t, score=score)
    await footage.detection("porch", T0 + 3, label="car", score=0.55)
    await footage.detection("porch", T0 + 65, score=0.75)
    await footage.detection("porch", T0 + 65, score=0.65, index=1)
    await asyncio.sleep(0.5)  # the indexer commits these before the chunk below exists
    await footage.gap("porch", T0 + 30, T0 + 60)
    chunks.append(await footage.chunk("porch", T0 + 60, T0 + 70))
    return {"chunks": chunks}


async def test_search_footage_and_chunks_with_urls_that_download(js, settings, footage, indexers, nc, chunk_clip):
    indexer = indexers()
    await wait_for_indexer(nc, settings, 30)
    made = await scene(footage)
    keys = [c.key for c in made["chunks"]]
    await indexed(nc, settings, chunks=4, detections=6, gaps=1)
    client = IndexClient(nc, settings)

    found = await client.search(T0 - 60, T0 + 600, camera="porch")
    summary = [(i.label, i.start - T0, i.end - T0, i.detections, i.max_score, [c.key for c in i.chunks])
               for i in found.incidents]
    assert summary == [
        ("person", 1, 12, 3, 0.9, keys[0:2]),
        ("car", 3, 3, 1, 0.55, keys[0:1]),
        ("person", 65, 65, 2, 0.75, keys[3:4]),
    ]
    assert found.total == 3 and found.merge_gap_s == 30
    first = found.incidents[0]
    assert first.snapshot_key == snapshot_key("porch", T0 + 5, "s1", 50), "the best-scoring detection's snapshot"
    for chunk in first.chunks:
        with urllib.request.urlopen(chunk.url, timeout=10) as response:
            assert response.read() == chunk_clip, "the presigned URL downloads the chunk"
    with av.open(urllib.request.urlopen(first.chunks[0].url, timeout=10)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 10, "a playable MP4"

    people = await client.search(T0 - 60, T0 + 600, label="person", min_score=0.7)
    assert [(i.start - T0, i.end - T0, i.detections) for i in people.incidents] == [(5, 12, 2), (65, 65, 1)]
    latest = await client.search(T0 - 60, T0 + 600, limit=1)
    assert [i.start - T0 for i in latest.incidents] == [65] and latest.total == 3

    at = await client.footage_at("porch", T0 + 15)
    assert (at.found, at.chunk.key, at.offset) == ("chunk", keys[1], 5.0)
    at = await client.footage_at("porch", T0 + 10)
    assert (at.found, at.chunk.key, at.offset) == ("chunk", keys[1], 0.0), "a chunk holds its start, not its end"
    at = await client.footage_at("porch", T0 + 45)
    assert (at.found, at.gap.start - T0, at.gap.end - T0, at.gap.reason) == ("gap", 30, 60, "camera unreachable")
    at = await client.footage_at("porch", T0 + 100)
    assert (at.found, at.previous_end - T0, at.next_start) == ("nothing", 70, None)

    span = await client.chunks("porch", T0 + 5, T0 + 65)
    assert [c.key for c in span.chunks] == keys and not span.truncated
    assert [(g.start - T0, g.end - T0) for g in span.gaps] == [(30, 60)]
    assert [c.key for c in (await client.chunks("porch", T0, T0 + 70, limit=2)).chunks] == keys[:2]

    links = await client.sql("SELECT time - $$t0$$::DOUBLE, chunk_key FROM detections ORDER BY time, idx"
                             .replace("$$t0$$", str(T0)))
    assert [tuple(r) for r in links.rows] == [(1, keys[0]), (3, keys[0]), (5, keys[0]), (12, keys[1]),
                                               (65, keys[3]), (65, keys[3])], "linked, also when the chunk came later"
    cameras = await client.sql("SELECT name, url, removed_at FROM cameras")
    assert [tuple(r) for r in cameras.rows] == [("porch", "rtsp://admin:***@192.0.2.1/porch", None)]

    with pytest.raises(CameraNotFound, match="no camera named 'nowhere'"):
        await client.footage_at("nowhere", T0)
    with pytest.raises(CameraNotFound):
        await client.search(T0, T0 + 1, camera="nowhere")
    assert indexer.alive()


async def dump(client: IndexClient) -> dict[str, list]:
    tables = {}
    for table in ("cameras", "chunks", "gaps", "detections"):
        answer = await client.sql(f"SELECT * FROM {table} ORDER BY ALL", max_rows=100_000)
        assert not answer.truncated
        tables[table] = [list(r) for r in answer.rows]
    return tables


async def test_replay_after_deleting_the_database_rebuilds_identical_tables(js, settings, footage, indexers, nc,
                                                                             tmp_path):
    database = tmp_path / "index.duckdb"
    first = indexers(database)
    await wait_for_indexer(nc, settings, 30)
    await scene(footage)
    registry = await CameraRegistry.open(js, settings)
    await footage.register("yard")
    await registry.remove("yard")  # a removed camera stays, marked
    await indexed(nc, settings, chunks=4, detections=6, gaps=1)
    client = IndexClient(nc, settings)
    await eventually(lambda: _removed(client), 10, what="removed camera marked")
    before = await dump(client)
    assert first.stop() == 0

    # Killed and restarted on the same file: it goes on from the database's position; nothing doubles.
    second = indexers(database)
    await wait_for_indexer(nc, settings, 30)
    assert await dump(client) == before
    await footage.detection("porch", T0 + 66)
    await indexed(nc, settings, chunks=4, detections=7, gaps=1)
    second.kill()
    third = indexers(database)
    await wait_for_indexer(nc, settings, 30)
    await indexed(nc, settings, chunks=4, detections=7, gaps=1)
    before = await dump(client)
    assert third.stop() == 0

    database.unlink()
    indexers(database)
    await wait_for_indexer(nc, settings, 30)
    await indexed(nc, settings, chunks=4, detections=7, gaps=1)
    await eventually(lambda: _removed(client), 10, what="removed camera marked after the rebuild")
    after = await dump(client)
    assert after == before
    assert len(after["detections"]) == 7 and all(row[14] for row in after["detections"]), "all linked"


async def _removed(client: IndexClient) -> bool:
    rows = (await client.sql("SELECT name FROM cameras WHERE removed_at IS NOT NULL")).rows
    return [tuple(r) for r in rows] == [("yard",)]


async def consumers_settled(js, settings) -> bool:
    names = settings.names
    for stream, durable in ((names.footage_stream, "indexer_footage"), (names.detections_stream, "indexer_detections")):
        try:
            info = await js.consumer_info(stream, durable)
        except NotFoundError:
            return False
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def test_garbage_is_terminated_counted_logged_once_and_indexing_goes_on(js, settings, footage, indexers, nc):
    indexer = indexers()
    await wait_for_indexer(nc, settings, 30)
    names = settings.names
    good = Segment(camera="porch", bucket="b", key="footage/porch/x.mp4", session="s1", first_seq=0, last_seq=1,
                   start=T0, end=T0 + 10, frames=2, bytes=1, codec="h264", width=2, height=2)
    newer = good.encode().replace(b"\xa1v\x01", b"\xa1v\x02")
    assert newer != good.encode()
    await footage.publish(names.footage("porch"), b"\x93not msgpack at all")           # garbage
    await footage.publish(names.footage("porch"), b"\x81\xa4kind\xa6future")             # unknown kind
    await footage.publish(names.footage("porch"), newer)                                  # garbage: a v2 segment
    await footage.publish(names.footage("porch"), b"\x93also not msgpack")               # garbage, counted only
    await footage.publish(names.footage("yard"), good.encode())                           # inconsistent: subject
    await footage.publish(names.detections("porch", "car"), (await _person(footage)).encode())  # label mismatch
    await footage.publish(names.footage("porch"), good.encode(), "porch:s1:0")            # good, after all that
    await footage.detection("porch", T0 + 1)
    await indexed(nc, settings, chunks=1, detections=1, garbage=6)
    await eventually(lambda: consumers_settled(js, settings), 10, what="every message settled")
    assert indexer.alive()
    assert indexer.stop() == 0
    log = indexer.log
    assert log.count("garbage message") == 1 and log.count("unknown message") == 1, log[-3000:]
    assert log.count("inconsistent message") == 2, "logged once per stream and kind"
    assert "garbage 3, unknown 1, inconsistent 2" in log


async def _person(footage: Footage) -> Detection:
    return Detection(camera="porch", time=T0, label="person", class_id=0, score=0.9, box=(0, 0, 1, 1), model="m",
                     session="s9", seq=1)


REFUSED_SQL = [
    ("INSERT INTO detections SELECT * FROM detections", "refused a INSERT statement"),
    ("DELETE FROM chunks", "refused a DELETE statement"),
    ("DROP TABLE chunks", "refused a DROP statement"),
    ("ATTACH 'other.duckdb'", "refused a ATTACH statement"),
    ("COPY chunks TO 'out.csv'", "refused a COPY statement"),
    ("PRAGMA database_size", "refused a PRAGMA statement"),
    ("SELECT 1; DROP TABLE chunks", "one statement at a time: got 2"),
    ("WITH gone AS (DELETE FROM chunks RETURNING *) SELECT count(*) FROM gone", "containing DELETE"),
    ("SELECT * FROM read_csv('/etc/passwd')", "file system operations are disabled"),
    ("SELECT getenv('SPECTARE_S3__SECRET_KEY')", "getenv does not exist"),
    ("SELECT FROM WHERE", "cannot parse the query"),
    ("SELECT * FROM no_such_table", "no_such_table does not exist"),
]


async def test_sql_refuses_writes_files_and_bad_queries_with_one_line(settings, footage, indexers, nc):
    indexers()
    await wait_for_indexer(nc, settings, 30)
    await scene(footage)
    await indexed(nc, settings, chunks=4, detections=6, gaps=1)
    client = IndexClient(nc, settings)
    for sql, message in REFUSED_SQL:
        with pytest.raises(IndexQueryError, match=message) as refused:
            await client.sql(sql)
        assert "\n" not in str(refused.value), sql
    assert (await client.status()).tables == {"cameras": 1, "chunks": 4, "gaps": 1, "detections": 6, "events": 0}


async def test_sql_rows_are_capped_slow_queries_stopped_and_the_index_untouched(js, settings, footage, indexers, nc):
    indexers(SPECTARE_INDEXER__MAX_ROWS="1000", SPECTARE_INDEXER__QUERY_TIMEOUT_S="1")
    await wait_for_indexer(nc, settings, 30)
    await scene(footage)
    await indexed(nc, settings, chunks=4, detections=6, gaps=1)
    client = IndexClient(nc, settings)
    capped = await client.sql("SELECT range AS n, to_timestamp(range) AS t FROM range(100000)")
    assert len(capped.rows) == 1000 and capped.truncated and capped.columns == ("n", "t")
    assert capped.rows[1] == (1, "1970-01-01T00:00:01+00:00") and capped.types == ("BIGINT", "TIMESTAMP WITH TIME ZONE")
    assert len((await client.sql("SELECT * FROM range(10)", max_rows=3)).rows) == 3
    began = time.monotonic()
    with pytest.raises(QueryTimeout, match="longer than 1 s and was stopped"):
        await client.sql("SELECT count(*) FROM range(100000000000) a, range(100) b WHERE a.range * b.range = 7")
    assert time.monotonic() - began < 5
    described = await client.sql("DESCRIBE detections")
    assert ("chunk_key", "VARCHAR") in {(r[0], r[1]) for r in described.rows}
    assert (await client.sql("SELECT count(*) FROM detections")).rows == ((6,),), "nothing was written"
    assert (await client.status()).tables["detections"] == 6


def test_cli_search_footage_at_and_sql_as_a_user_runs_them(settings, tmp_path):
    async def prepare():
        nc = await connect(settings, "test-cli")
        js = nc.jetstream()
        ensure_bucket(settings.s3)
        clip = make_test_clip(source_video(), tmp_path / "c.mp4", width=160, height=90, fps=5, gop_seconds=1,
                              seconds=2).read_bytes()
        made = await scene(Footage(js, settings, clip))
        await indexed(nc, settings, chunks=4, detections=6, gaps=1)
        await nc.close()
        return made

    indexers = Indexers(settings, tmp_path)
    indexers()
    try:
        made = asyncio.run(prepare())
        keys = [c.key for c in made["chunks"]]
        result = run_cli(settings, "search", "--label", "person", "--since", "2h", "--json")
        assert result.returncode == 0, result.stderr
        found = json.loads(result.stdout)
        assert [(i["detections"], [c["key"] for c in i["chunks"]]) for i in found["incidents"]] == [
            (3, keys[:2]), (2, keys[3:])]
        assert found["incidents"][0]["chunks"][0]["url"].startswith("http://")
        table = run_cli(settings, "search", "--camera", "porch", "--since", "2h")
        assert table.returncode == 0 and table.stdout.splitlines()[0].split() == [
            "CAMERA", "LABEL", "FROM", "TO", "DETECTIONS", "BEST", "SNAPSHOT", "CHUNKS"]
        assert len(table.stdout.splitlines()) == 4 and f"{keys[0]} +1" in table.stdout

        at = run_cli(settings, "footage", "at", "porch", _local_iso(T0 + 15), "--json")
        assert at.returncode == 0, at.stderr
        assert (json.loads(at.stdout)["found"], json.loads(at.stdout)["chunk"]["key"]) == ("chunk", keys[1])
        gap = run_cli(settings, "footage", "at", "porch", _local_iso(T0 + 45))
        assert "no footage, gap" in gap.stdout and "camera unreachable" in gap.stdout

        counted = run_cli(settings, "sql", "SELECT label, count(*) AS n FROM detections GROUP BY label ORDER BY label",
                          "--json")
        assert json.loads(counted.stdout)["rows"] == [["car", 1], ["person", 5]]
        refused = run_cli(settings, "sql", "DELETE FROM detections")
        assert refused.returncode == 1
        assert refused.stderr.strip().splitlines() == [
            "spectare: error: only reading queries run here (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW or "
            "SUMMARIZE); refused a DELETE statement"]

        bad = run_cli(settings, "search", "--start", "the day before", "--end", "now")
        assert bad.returncode == 1 and bad.stderr.startswith("spectare: error: cannot read 'the day before' as a time")
        unknown = run_cli(settings, "footage", "at", "nowhere", "now")
        assert unknown.returncode == 1 and "no camera named 'nowhere' in the index" in unknown.stderr
    finally:
        for process in indexers.started:
            process.stop()
    none = run_cli(settings, "search", "--since", "1h")
    assert none.returncode == 1
    assert none.stderr.strip().splitlines() == [
        f"spectare: error: no indexer is running (nothing answers on {settings.names.index('events')}): start one "
        "with `spectare up`, or `python -m spectare.indexer` beside your NATS"]


def _local_iso(t: float) -> str:
    """A moment as a user types it: local wall-clock time, no zone."""
    from datetime import datetime
    return datetime.fromtimestamp(t).isoformat()
