"""Retention against a real indexer, NATS and S3: a sweep deletes exactly what the policies say (objects, rows
and stream events in step, so a rebuild from the streams agrees), a dry run deletes nothing, and a sweep
killed between deleting rows and deleting objects is finished by the next one."""

import asyncio
import io
import json
import time

import pytest
from nats.js.errors import NotFoundError

from spectare.core.bus import connect, ensure_topology
from spectare.core.registry import CameraRegistry
from spectare.core.store import ensure_bucket, s3_client
from spectare.local.servers import S3Credentials, SeaweedS3
from spectare.schemas import CameraConfig, Detection, Segment
from spectare.schemas.keys import chunk_key, snapshot_key

from .helpers import ServiceProcess, eventually, run_cli, settings_for

DAY = 86_400.0
CLIP = b"\x00\x00\x00\x18ftypisom" + b"x" * 1000  # what the objects hold does not matter here


class Store:
    """Footage and detections published as the segmenter and detector do, objects put in S3."""

    def __init__(self, js, settings) -> None:
        self.js = js
        self.settings = settings
        self.s3 = s3_client(settings.s3)
        self.seqs: dict[str, int] = {}  # key -> stream sequence of its announcement

    async def camera(self, name: str, **fields) -> None:
        registry = await CameraRegistry.open(self.js, self.settings)
        await registry.put(CameraConfig(name=name, url=f"rtsp://u:p@192.0.2.1/{name}", **fields))

    async def chunk(self, camera: str, start: float) -> str:
        seq = int(start) % 1_000_000
        key = chunk_key(camera, start, "s1", seq)
        await asyncio.to_thread(self.s3.put_object, self.settings.s3.bucket, key, io.BytesIO(CLIP), len(CLIP))
        segment = Segment(camera=camera, bucket=self.settings.s3.bucket, key=key, session="s1", first_seq=seq,
                          last_seq=seq + 149, start=start, end=start + 10, frames=150, bytes=len(CLIP), codec="h264",
                          width=64, height=64)
        ack = await self.js.publish(self.settings.names.footage(camera), segment.encode(),
                                    headers={"Nats-Msg-Id": f"{camera}:s1:{seq}"})
        self.seqs[key] = ack.seq
        return key

    async def detection(self, camera: str, t: float) -> str:
        seq = int(t) % 1_000_000
        key = snapshot_key(camera, t, "s1", seq)
        await asyncio.to_thread(self.s3.put_object, self.settings.s3.bucket, key, io.BytesIO(b"jpeg"), 4)
        detection = Detection(camera=camera, time=t, label="person", class_id=0, score=0.9, box=(0.1, 0.1, 0.2, 0.2),
                              model="yolov4-tiny", session="s1", seq=seq, snapshot_key=key)
        ack = await self.js.publish(self.settings.names.detections(camera, "person"), detection.encode(),
                                    headers={"Nats-Msg-Id": f"{camera}:s1:{seq}:0"})
        self.seqs[key] = ack.seq
        return key

    def objects(self) -> set[str]:
        return {o.object_name for prefix in ("footage/", "snapshots/")
                for o in self.s3.list_objects(self.settings.s3.bucket, prefix=prefix, recursive=True)}


def sql(settings, query: str) -> list:
    result = run_cli(settings, "sql", query, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["rows"]


async def indexed(settings, chunks: int, detections: int) -> None:
    async def check() -> bool:
        result = await asyncio.to_thread(run_cli, settings, "sql",
                                         "SELECT (SELECT count(*) FROM chunks), (SELECT count(*) FROM detections)",
                                         "--json")
        return result.returncode == 0 and json.loads(result.stdout)["rows"] == [[chunks, detections]]

    await eventually(check, 60, what=f"{chunks} chunks and {detections} detections indexed")


def start_indexer(settings, tmp_path, name: str = "indexer") -> ServiceProcess:
    return ServiceProcess("indexer", settings, tmp_path / f"{name}.log",
                          SPECTARE_INDEXER__DATABASE=str(tmp_path / "index.duckdb"),
                          SPECTARE_INDEXER__RETENTION_INTERVAL_S="0", SPECTARE_INDEXER__EXPORT_INTERVAL_S="0").start()


async def test_a_sweep_deletes_exactly_what_the_policies_say(js, settings, tmp_path):
    ensure_bucket(settings.s3)
    store = Store(js, settings)
    now = time.time()
    await store.camera("porch", keep_days=1.0, keep_event_days=2.0)
    await store.camera("yard")  # the indexer's defaults: 14 days, events 30 days
    old_plain = await store.chunk("porch", now - 3 * DAY)
    old_event = await store.chunk("porch", now - 1.5 * DAY)
    event_detection = await store.detection("porch", now - 1.5 * DAY + 5)
    expired_detection = await store.detection("porch", now - 2.5 * DAY)
    fresh = await store.chunk("porch", now - 3600)
    yard_old = await store.chunk("yard", now - 3 * DAY)
    indexer = start_indexer(settings, tmp_path)
    try:
        await indexed(settings, chunks=4, detections=2)
        before = store.objects()

        dry = await asyncio.to_thread(run_cli, settings, "retention", "run", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        report = json.loads(dry.stdout)
        assert (report["chunks"], report["detections"], report["snapshots"]) == (1, 1, 1)
        assert store.objects() == before, "a dry run deletes nothing"

        done = await asyncio.to_thread(run_cli, settings, "retention", "run")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("deleted 1 chunks"), done.stdout
        assert before - store.objects() == {old_plain, expired_detection}
        assert sorted(r[0] for r in sql(settings, "SELECT key FROM chunks")) == sorted([old_event, fresh, yard_old])
        assert sql(settings, "SELECT snapshot_key FROM detections") == [[event_detection]]
        assert sql(settings, "SELECT count(*) FROM retention_queue") == [[0]]
        for key in (old_plain, expired_detection):  # their announcements are gone from the streams too
            stream = settings.names.footage_stream if key.startswith("footage/") else settings.names.detections_stream
            with pytest.raises(NotFoundError):
                await js.get_msg(stream, store.seqs[key])
        assert await js.get_msg(settings.names.footage_stream, store.seqs[fresh])

        # The Parquet export of the swept index, as `spectare export run` asks the running indexer.
        exported = await asyncio.to_thread(run_cli, settings, "export", "run", "--json")
        assert exported.returncode == 0, exported.stderr
        assert json.loads(exported.stdout)["rows"] == 3 + 1, "3 chunks and 1 detection"
        parquet = {o.object_name for o in store.s3.list_objects(settings.s3.bucket, prefix="parquet/",
                                                                  recursive=True)}
        assert f"parquet/chunks/date={time.strftime('%Y-%m-%d', time.gmtime(now - 3600))}/camera=porch/part0.parquet" \
            in parquet and "parquet/cameras.parquet" in parquet

        # A rebuild from the streams agrees with the swept index.
        assert indexer.stop() == 0
        (tmp_path / "index.duckdb").unlink()
        indexer = start_indexer(settings, tmp_path, "rebuilt")
        await indexed(settings, chunks=3, detections=1)
        assert sorted(r[0] for r in sql(settings, "SELECT key FROM chunks")) == sorted([old_event, fresh, yard_old])
    finally:
        indexer.stop()


async def test_a_sweep_killed_between_rows_and_objects_is_finished_by_the_next(nats_server, tmp_path):
    """S3 goes away mid-sweep (rows already deleted, objects not), the indexer is killed -9; the next sweep
    finishes the queued deletions: no row points at a deleted object, no orphan object stays."""
    s3 = SeaweedS3(tmp_path / "s3", tmp_path / "s3.log", S3Credentials.generate())
    s3.start()
    settings = settings_for(nats_server, s3, tmp_path / "state")
    ensure_bucket(settings.s3)
    nc = await connect(settings, "test")
    js = nc.jetstream()
    await ensure_topology(js, settings)
    store = Store(js, settings)
    indexer = None
    try:
        now = time.time()
        await store.camera("porch", keep_days=1.0, keep_event_days=1.0)
        doomed = {await store.chunk("porch", now - 3 * DAY + 10 * i) for i in range(20)}
        kept = await store.chunk("porch", now - 600)
        indexer = start_indexer(settings, tmp_path)
        await indexed(settings, chunks=21, detections=0)

        s3.stop()
        failed = await asyncio.to_thread(run_cli, settings, "retention", "run", timeout=120)
        assert failed.returncode == 1 and "retention failed" in failed.stderr, failed.stderr
        assert sql(settings, "SELECT count(*) FROM chunks") == [[1]], "the rows went first"
        assert sql(settings, "SELECT count(*) FROM retention_queue") == [[20]], "what is left to delete is queued"
        indexer.kill()

        s3.start()
        assert doomed <= store.objects(), "the objects are still there: S3 was away"
        indexer = start_indexer(settings, tmp_path, "after-crash")
        await indexed(settings, chunks=1, detections=0)
        done = await asyncio.to_thread(run_cli, settings, "retention", "run", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["resumed"] == 20
        assert store.objects() == {kept}, "no orphan object"
        assert sql(settings, "SELECT key FROM chunks") == [[kept]]
        assert sql(settings, "SELECT count(*) FROM retention_queue") == [[0]]
    finally:
        if indexer is not None:
            indexer.stop()
        await nc.close()
        s3.stop()
