"""Continuous recording end to end: RTSP camera -> ingest -> JetStream -> segmenter -> S3 + footage
events, all real processes and servers; crashes, outages and failover included."""

import asyncio
import time
from collections import Counter
from pathlib import Path

import av
import pytest

from spectare.core.bus import connect, ensure_topology
from spectare.core.footage import read_footage
from spectare.core.leases import LeaseTable
from spectare.core.registry import CameraRegistry
from spectare.core.store import ensure_bucket, s3_client
from spectare.local.process import free_ports
from spectare.local.servers import S3Credentials, SeaweedS3
from spectare.local.testcam import RtspTestCamera
from spectare.media.fmp4 import is_fragmented
from spectare.schemas import CameraConfig, Gap, PacketGroup, Segment

from .helpers import ServiceProcess, eventually, metric, scrape, settings_for
from .media import avcc_nals, file_access_units, picture_nals

FPS = 15
FRAME = 1 / FPS


class Pipeline:
    """Ingest and segmenter processes for one test, stopped at the end."""

    def __init__(self, settings, tmp_path: Path) -> None:
        self.settings = settings
        self.tmp_path = tmp_path
        self.processes: list[ServiceProcess] = []

    def start(self, module: str, name: str | None = None, **env: str) -> ServiceProcess:
        process = ServiceProcess(module, self.settings, self.tmp_path / f"{name or module}.log",
                                 SPECTARE_SEGMENTER__STALL_TIMEOUT_S="3", **env).start()
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def pipeline(settings, tmp_path):
    p = Pipeline(settings, tmp_path)
    yield p
    p.stop_all()


async def register(js, settings, name: str, url: str, segment_seconds: int = 10) -> None:
    registry = await CameraRegistry.open(js, settings)
    await registry.add(CameraConfig(name=name, url=url, segment_seconds=segment_seconds, detect=False))


async def segments_of(js, settings, camera: str) -> list[Segment]:
    return [i for i in await read_footage(js, settings, camera) if isinstance(i, Segment)]


async def gaps_of(js, settings, camera: str) -> list[Gap]:
    return [i for i in await read_footage(js, settings, camera) if isinstance(i, Gap)]


async def footage_event_count(js, settings, camera: str) -> Counter:
    """How many times each chunk was announced on the footage stream (duplicates show as > 1)."""
    counts: Counter = Counter()
    sub = await js.subscribe(settings.names.footage(camera), ordered_consumer=True)
    try:
        while True:
            try:
                msg = await sub.next_msg(1.0)
            except TimeoutError:
                break
            if msg.data[:64].find(b"segment") >= 0:
                counts[Segment.decode(msg.data).key] += 1
    finally:
        await sub.unsubscribe()
    return counts


def verify_chunks(settings, segments: list[Segment], clip: Path) -> None:
    """Every chunk plays, holds exactly the frames the camera sent for its sequence numbers (the test
    camera sends the clip from its first frame, looping), and chunks of a session are back to back."""
    clip_frames = [nals for _, nals in file_access_units(clip)]
    client = s3_client(settings.s3)
    by_session: dict[str, list[Segment]] = {}
    for segment in segments:
        by_session.setdefault(segment.session, []).append(segment)
        data = client.get_object(settings.s3.bucket, segment.key).read()
        assert len(data) == segment.bytes
        assert is_fragmented(data), f"{segment.key}: fragmented MP4"
        path = Path(f"/tmp/{segment.key.replace('/', '_')}")
        path.write_bytes(data)
        with av.open(str(path)) as container:
            assert container.duration / 1e6 == pytest.approx(segment.end - segment.start, abs=FRAME), segment.key
            stream = container.streams.video[0]
            packets = [p for p in container.demux(stream) if p.size]
            decoded = sum(len(stream.codec_context.decode(p)) for p in packets)
            decoded += len(stream.codec_context.decode(None))
        path.unlink()
        assert len(packets) == decoded == segment.frames, f"{segment.key}: all frames decode"
        assert segment.last_seq - segment.first_seq + 1 == segment.frames
        for offset, packet in enumerate(packets):
            expected = clip_frames[(segment.first_seq + offset) % len(clip_frames)]
            assert picture_nals(avcc_nals(bytes(packet))) == expected, f"{segment.key} frame {offset}"
    for session, chunks in by_session.items():
        chunks.sort(key=lambda s: s.first_seq)
        for a, b in zip(chunks, chunks[1:], strict=False):
            assert b.first_seq == a.last_seq + 1, f"session {session}: frames lost between chunks"
            assert b.start == pytest.approx(a.end, abs=FRAME), "chunk i ends where chunk i+1 starts"


async def media_packet_count(js, settings, camera: str) -> int:
    """Packets the camera sent, as ingest published them (in groups) on its packets subject."""
    count = 0
    sub = await js.subscribe(settings.names.packets(camera), ordered_consumer=True)
    try:
        while True:
            try:
                msg = await sub.next_msg(1.0)
            except TimeoutError:
                return count
            count += len(PacketGroup.decode(msg.data).packets)
    finally:
        await sub.unsubscribe()


async def everything_recorded(js, settings, camera: str, timeout: float) -> list[Segment]:
    """Once the camera's packets stopped: wait until its chunks hold every packet sent, and return them."""
    sent = await media_packet_count(js, settings, camera)
    segments = await eventually(
        lambda: _when(segments_of(js, settings, camera), lambda s: sum(x.frames for x in s) >= sent), timeout,
        what=f"all {sent} frames of {camera} in chunks")
    assert sum(s.frames for s in segments) == sent, "the chunks' frames sum to the frames the camera sent"
    return segments


async def test_a_minute_of_a_camera_is_recorded_completely(js, settings, rtsp_camera, camera_clip, pipeline):
    await register(js, settings, "cam1", rtsp_camera.url("cam1"))
    ingest_port, segmenter_port = free_ports(2)
    ingest = pipeline.start("ingest", SPECTARE_METRICS_PORT=str(ingest_port))
    pipeline.start("segmenter", SPECTARE_METRICS_PORT=str(segmenter_port))
    await asyncio.sleep(30)
    packets_at_30s = metric(scrape(ingest_port), "spectare_ingest_packets_total", camera="cam1")
    await asyncio.sleep(30)
    packets_at_60s = metric(scrape(ingest_port), "spectare_ingest_packets_total", camera="cam1")
    assert packets_at_30s and packets_at_60s - packets_at_30s >= 25 * FPS, "the packet counter moves with the camera"
    ingest.stop()  # the camera "stops sending": the segmenter closes the last chunk after its stall timeout
    segments = await everything_recorded(js, settings, "cam1", 20)
    samples = scrape(segmenter_port)
    assert metric(samples, "spectare_segmenter_chunks_total", camera="cam1") == len(segments)
    assert metric(samples, "spectare_segmenter_chunk_latency_seconds_count") == len(segments)
    lag = metric(samples, "spectare_consumer_lag_messages", stream=settings.names.media_stream, consumer="seg_cam1")
    assert lag is not None
    assert sum(s.frames for s in segments) >= 55 * FPS
    assert all(9.9 <= s.duration <= 10.1 for s in segments[:-1]), [s.duration for s in segments]
    verify_chunks(settings, segments, camera_clip)
    gaps = await gaps_of(js, settings, "cam1")
    assert [g.start for g in gaps] == [pytest.approx(segments[-1].end)], "the stop shows as one gap"
    counts = await footage_event_count(js, settings, "cam1")
    assert set(counts.values()) == {1}


async def test_segmenter_killed_mid_chunk_loses_and_duplicates_nothing(js, settings, rtsp_camera, camera_clip,
                                                                      pipeline):
    await register(js, settings, "cam2", rtsp_camera.url("cam2"), segment_seconds=4)
    ingest = pipeline.start("ingest")
    segmenter = pipeline.start("segmenter", "segmenter-1")
    await eventually(lambda: _when(segments_of(js, settings, "cam2"), lambda s: len(s) >= 1), 20,
                     what="a first chunk")
    await asyncio.sleep(2)  # mid-chunk
    segmenter.kill()
    await asyncio.sleep(3)
    pipeline.start("segmenter", "segmenter-2")
    await asyncio.sleep(8)
    ingest.stop()
    segments = await everything_recorded(js, settings, "cam2", 20)
    verify_chunks(settings, segments, camera_clip)
    counts = await footage_event_count(js, settings, "cam2")
    assert set(counts.values()) == {1}, "no chunk announced twice"
    objects = [o.object_name for o in s3_client(settings.s3).list_objects(settings.s3.bucket, "footage/cam2/",
                                                                           recursive=True)]
    assert sorted(objects) == sorted(s.key for s in segments), "no duplicate or orphan object"


async def test_camera_down_and_back_is_an_announced_gap(js, settings, camera_clip, pipeline, tmp_path):
    camera = RtspTestCamera({"yard": camera_clip}, tmp_path / "cam.log").start()
    port = camera.port
    await register(js, settings, "yard", camera.url("yard"), segment_seconds=4)
    pipeline.start("ingest", SPECTARE_INGEST__RECONNECT_MAX_S="1")
    pipeline.start("segmenter")
    try:
        await eventually(lambda: _when(segments_of(js, settings, "yard"), lambda s: len(s) >= 1), 20,
                         what="recording")
        camera.stop()
        down_at = time.time()
        await asyncio.sleep(6)
        camera = RtspTestCamera({"yard": camera_clip}, tmp_path / "cam.log", port=port).start()
        up_at = time.time()
        segments = await eventually(
            lambda: _when(segments_of(js, settings, "yard"), lambda s: len({x.session for x in s}) == 2), 30,
            what="recording resumed in a new session")
    finally:
        camera.stop()
    gaps = await gaps_of(js, settings, "yard")
    assert len(gaps) == 1
    gap = gaps[0]
    first_session = [s for s in segments if s.session == segments[0].session]
    second_session = [s for s in segments if s.session != segments[0].session]
    assert gap.start == pytest.approx(first_session[-1].end, abs=FRAME)
    assert gap.end == pytest.approx(second_session[0].start, abs=FRAME)
    assert down_at - 1 <= gap.start <= down_at + 1 and up_at - 1 <= gap.end <= up_at + 3
    verify_chunks(settings, segments, camera_clip)


async def test_failover_between_two_ingest_workers(js, settings, rtsp_camera, camera_clip, pipeline):
    workers = [pipeline.start("ingest", f"ingest{i}", SPECTARE_INGEST__MAX_CAMERAS="3") for i in (1, 2)]
    pipeline.start("segmenter")
    for name in ("cam1", "cam2", "cam3"):
        await register(js, settings, name, rtsp_camera.url(name), segment_seconds=4)
    leases = await LeaseTable.open(js, settings, "ingest", "observer")
    owners = await eventually(lambda: _when(leases.owners(), lambda o: len(o) == 3), 20, what="3 leased")
    await eventually(lambda: _when(segments_of(js, settings, "cam1"), lambda s: len(s) >= 1), 20, what="chunks")
    lonely = next(w for w in set(owners.values()) if list(owners.values()).count(w) == 1)
    moved = next(c for c, w in owners.items() if w == lonely)
    victim = next(w for w in workers if lonely.split("-")[2] == str(w.proc.pid))
    victim.kill()
    killed_at = time.time()
    segments = await eventually(
        lambda: _when(segments_of(js, settings, moved), lambda s: len({x.session for x in s}) == 2), 40,
        what="the moved camera recorded by the other worker")
    gaps = await eventually(lambda: _when(gaps_of(js, settings, moved), lambda g: g and g[0].end), 10,
                            what="the failover gap closed")
    assert len(gaps) == 1
    failover = gaps[0].end - gaps[0].start
    assert failover <= leases.ttl_s + 4, f"gap of {failover:.1f}s is longer than the failover"
    assert gaps[0].start <= killed_at + 1
    for camera in {"cam1", "cam2", "cam3"} - {moved}:
        assert await gaps_of(js, settings, camera) == [], f"{camera} kept recording without a gap"
    verify_chunks(settings, segments, camera_clip)


async def test_s3_outage_loses_no_footage(nats_server, rtsp_camera, camera_clip, tmp_path, pipeline):
    s3 = SeaweedS3(tmp_path / "s3", tmp_path / "s3.log", S3Credentials.generate())
    s3.start()
    settings = settings_for(nats_server, s3, tmp_path / "state")
    pipeline.settings = settings
    ensure_bucket(settings.s3)
    nc = await connect(settings, "test")
    js = nc.jetstream()
    await ensure_topology(js, settings)
    try:
        await register(js, settings, "cam3", rtsp_camera.url("cam3"), segment_seconds=4)
        ingest = pipeline.start("ingest")
        segmenter = pipeline.start("segmenter")
        await eventually(lambda: _when(segments_of(js, settings, "cam3"), lambda s: len(s) >= 1), 20,
                         what="recording")
        s3.stop()
        await asyncio.sleep(30)
        assert segmenter.alive()
        s3 = SeaweedS3(tmp_path / "s3", tmp_path / "s3.log", s3.credentials, port=s3.port)
        s3.start()
        await asyncio.sleep(5)
        ingest.stop()
        segments = await everything_recorded(js, settings, "cam3", 60)
        assert len({s.session for s in segments}) == 1, "one unbroken session"
        verify_chunks(settings, segments, camera_clip)
        assert "S3" in segmenter.log
    finally:
        await nc.close()
        s3.stop()


async def _when(awaitable, predicate):
    value = await awaitable
    return value if predicate(value) else None
