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
from spectare.core.registry import CameraRegistry
from spectare.core.store import ensure_bucket, s3_client
from spectare.indexer.client import IndexClient, IndexQueryError, IndexUnavailable, QueryTimeout, wait_for_indexer
from spectare.local.testcam import make_test_clip
from spectare.schemas import CameraConfig, Detection, Gap, Segment
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
        await self.publish(self.names.footage(camera), segment.encode(), f"{camera}:{session}:{first_seq}")
        return segment

    async def gap(self, camera: str, start: float, end: float | None) -> Gap:
        gap = Gap(camera=camera, start=start, end=end, reason="camera unreachable", session="s1")
        await self.publish(self.names.footage(camera), gap.encode(),
                           f"{camera}:gap:{start:.6f}:{'open' if end is None else f'{end:.6f}'}")
        return gap

    async def detection(self, camera: str, t: float, label: str = "person", score: float = 0.8, index: int = 0,
                        session: str = "s1") -> Detection:
        seq = int((t - T0) * 10)
        detection = Detection(camera=camera, time=t, label=label, class_id=0 if label == "person" else 2,
                              score=score, box=(0.1, 0.2, 0.3, 0.4), model="yolov4-tiny", session=session, seq=seq,
                              snapshot_key=snapshot_key(camera, t, session, seq))
        await self.publish(self.names.detections(camera, label), detection.encode(),
                           f"{camera}:{session}:{seq}:{index}")
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
