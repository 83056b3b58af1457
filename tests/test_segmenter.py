"""The segmenter as it runs: a real `python -m spectare.segmenter` process against real NATS and S3, fed
real packets (a clip cut from the demo footage, published as ingest publishes them).

Covers: chunks in S3 and announced, decodable, back to back, no duplicates; kill -9 and restart; an S3
outage while packets keep coming; garbage on the camera's subjects; gaps from a new session, a hole
in seq and a stall.
"""

import asyncio
import os
import time

import pytest
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from spectare.core.bus import ensure_topology
from spectare.core.config import Settings
from spectare.core.registry import CameraRegistry
from spectare.core.store import s3_client
from spectare.local.servers import S3Credentials, SeaweedS3
from spectare.media.fmp4 import is_fragmented
from spectare.schemas import CameraConfig, Gap, Message, Packet, Segment, StreamInfo, decode_one_of
from spectare.segmenter.consumer import PULL_GRACE_S, InfoLookup, Puller, consumer_name, open_consumer
from spectare.segmenter.remux import Remuxer
from spectare.segmenter.settings import SegmenterSettings, load_segmenter_settings
from spectare.segmenter.sink import CameraStats, ChunkSink, Shared

from .helpers import ServiceProcess, eventually, settings_for
from .packets import Clip, check_mp4, load_clip

CAM = "cam1"
FPS = 15
STALL_S = 1.5
FRAME_S = 1 / FPS


SEGMENTER_ENV = {"SPECTARE_SEGMENTER__STALL_TIMEOUT_S": str(STALL_S), "SPECTARE_SEGMENTER__FETCH_TIMEOUT_S": "0.2",
                 "SPECTARE_SEGMENTER__UPLOAD_BACKOFF_MAX_S": "1", "SPECTARE_SEGMENTER__UPLOAD_TIMEOUT_S": "3"}


@pytest.fixture
def start_segmenter(tmp_path):
    """Start `python -m spectare.segmenter` (DEBUG log in a file); every one started is killed at the end."""
    started: list[ServiceProcess] = []

    def start(settings: Settings, **env: str) -> ServiceProcess:
        log_file = tmp_path / f"segmenter-{len(started) + 1}.log"
        process = ServiceProcess("segmenter", settings, log_file, **{**SEGMENTER_ENV, **env}).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture(scope="module")
def clip(camera_clip) -> Clip:
    return load_clip(camera_clip)  # 20 s, 640x360, 15 fps, a keyframe every second: 300 packets


async def register(js, settings: Settings, segment_seconds: int = 2) -> None:
    registry = await CameraRegistry.open(js, settings)
    await registry.add(CameraConfig(name=CAM, url="rtsp://127.0.0.1:1/none", segment_seconds=segment_seconds))


async def publish(js, settings: Settings, messages: list[Message | tuple[str, bytes, str]],
                  speed: float | None = None) -> dict[int, float]:
    """Publish as ingest does (Msg-Ids `<cam>:<session>:<seq>` / `<cam>:<session>:info`); a tuple is raw
    (subject, bytes, msg id). With `speed`, packets are paced by their wall times (1 = real time), else sent
    at once. Returns the monotonic time each packet seq was published."""
    names = settings.names
    sent: dict[int, float] = {}
    began, first_wall = time.monotonic(), None
    for message in messages:
        if isinstance(message, Packet):
            if speed is not None:
                first_wall = message.wall_time if first_wall is None else first_wall
                await asyncio.sleep(max(0.0, began + (message.wall_time - first_wall) / speed - time.monotonic()))
            subject, data, msg_id = names.packets(CAM), message.encode(), f"{CAM}:{message.session}:{message.seq}"
        elif isinstance(message, StreamInfo):
            subject, data, msg_id = names.info(CAM), message.encode(), f"{CAM}:{message.session}:info"
        else:
            subject, data, msg_id = message
        await js.publish(subject, data, headers={"Nats-Msg-Id": msg_id}, timeout=5)
        if isinstance(message, Packet):
            sent[message.seq] = time.monotonic()
    return sent


async def footage(js, settings: Settings) -> list[tuple[str, Segment | Gap]]:
    """Every event on footage.<cam>, in order, with its Msg-Id."""
    names = settings.names
    events, seq = [], 1
    while True:
        try:
            raw = await js.get_msg(names.footage_stream, seq=seq, subject=names.footage(CAM), next=True)
        except NotFoundError:
            return events
        events.append(((raw.headers or {}).get("Nats-Msg-Id", ""), decode_one_of(raw.data, Segment, Gap)))
        seq = raw.seq + 1


def segments_of(events) -> list[Segment]:
    return [e for _, e in events if isinstance(e, Segment)]


def gaps_of(events) -> list[Gap]:
    return [e for _, e in events if isinstance(e, Gap)]


async def wait_for(js, settings: Settings, predicate, process: ServiceProcess, timeout: float = 30.0,
                   what: str = "footage"):
    deadline = time.monotonic() + timeout
    while True:
        events = await footage(js, settings)
        if predicate(events):
            return events
        assert process.alive(), f"segmenter exited:\n{process.log[-3000:]}"
        if time.monotonic() > deadline:
            summary = [(type(e).__name__, getattr(e, "key", None) or (e.start, getattr(e, "end", None)))
                       for _, e in events]
            raise AssertionError(f"no {what} after {timeout}s; have {summary}\n{process.log[-3000:]}")
        await asyncio.sleep(0.1)


def check_stored(settings: Settings, segments: list[Segment]) -> None:
    """Every announced chunk is in S3 once, decodes fully with the frames announced; nothing else stored."""
    s3 = s3_client(settings.s3)
    keys = [s.key for s in segments]
    assert len(set(keys)) == len(keys), "duplicate Segment events"
    listed = {o.object_name for o in s3.list_objects(settings.s3.bucket, prefix="footage/", recursive=True)}
    assert listed == set(keys), f"bucket and events disagree: {sorted(listed ^ set(keys))}"
    for seg in segments:
        data = s3.get_object(settings.s3.bucket, seg.key).read()
        assert len(data) == seg.bytes
        assert is_fragmented(data), f"{seg.key}: fragmented MP4"
        check = check_mp4(data)
        assert check.frames == seg.frames, seg.key
        assert check.duration == pytest.approx(seg.end - seg.start, abs=FRAME_S)


def check_back_to_back(segments: list[Segment]) -> None:
    for a, b in zip(segments, segments[1:], strict=False):
        assert b.start == pytest.approx(a.end, abs=FRAME_S), f"{a.key} -> {b.key}"
        assert (a.session, a.last_seq + 1) == (b.session, b.first_seq)


def complete(n_segments: int):
    """Predicate: n segments and, after them, the stall's open gap."""
    def done(events) -> bool:
        return len(segments_of(events)) >= n_segments and isinstance(events[-1][1], Gap) and events[-1][1].end is None
    return done


# -- the tests ------------------------------------------------------------------------------------

async def test_records_a_camera_into_chunks(js, settings, clip, start_segmenter):
    await register(js, settings)
    segmenter = start_segmenter(settings)
    anchor = time.time()
    packets = clip.session_packets(CAM, "s1", anchor)
    announced: dict[str, float] = {}

    async def watch() -> None:  # when each Segment event arrives, to measure availability latency
        sub = await js.subscribe(settings.names.footage(CAM), ordered_consumer=True)
        async for msg in sub.messages:
            event = decode_one_of(msg.data, Segment, Gap)
            if isinstance(event, Segment):
                announced.setdefault(event.key, time.monotonic())

    watcher = asyncio.create_task(watch())
    # The first 10 s at once (a backlog), the rest live, at twice real time.
    await publish(js, settings, [clip.stream_info(CAM, "s1", anchor), *packets[:150]])
    await wait_for(js, settings, lambda ev: len(segments_of(ev)) == 4, segmenter)
    sent = await publish(js, settings, packets[150:], speed=2.0)
    events = await wait_for(js, settings, complete(10), segmenter)
    watcher.cancel()

    segments = segments_of(events)
    assert [(s.first_seq, s.last_seq, s.frames) for s in segments] == [(30 * i, 30 * i + 29, 30) for i in range(10)]
    assert segments[0].start == pytest.approx(anchor) and segments[-1].end == pytest.approx(anchor + 20)
    assert all((s.codec, s.width, s.height, s.bucket) == ("h264", 640, 360, settings.s3.bucket) for s in segments)
    check_back_to_back(segments)
    check_stored(settings, segments)
    ids = [msg_id for msg_id, _ in events]
    assert len(set(ids)) == len(ids)
    assert ids[:10] == [f"{CAM}:s1:{30 * i}" for i in range(10)]
    (gap,) = gaps_of(events)
    assert (gap.start, gap.end, gap.reason, gap.session) == (segments[-1].end, None, "no packets for 1.5s", "s1")
    assert ids[10] == f"{CAM}:gap:{gap.start:.6f}:open"
    # Live chunks (cut by keyframes published at seq 150, 180, ...) are announced well within 2 s.
    latencies = [announced[s.key] - sent[s.last_seq + 1] for s in segments[4:9]]
    print(f"chunk availability latency: {', '.join(f'{x * 1e3:.0f} ms' for x in latencies)}")
    assert max(latencies) < 1.5, latencies
    assert segmenter.stop() == 0
    assert "stored footage/cam1/" in segmenter.log  # one DEBUG line per chunk
    assert "camera cam1: stopped (10 chunks" in segmenter.log


async def test_kill_9_and_restart_loses_and_duplicates_nothing(js, settings, clip, start_segmenter):
    await register(js, settings)
    segmenter = start_segmenter(settings)
    anchor = time.time() - 20
    packets = clip.session_packets(CAM, "s1", anchor)
    await publish(js, settings, [clip.stream_info(CAM, "s1", anchor), *packets[:135]])  # 9 s
    await wait_for(js, settings, lambda ev: len(segments_of(ev)) >= 4, segmenter)
    await publish(js, settings, packets[135:200])  # a chunk closes (at 10 s) and another is open
    await asyncio.sleep(0.05)
    segmenter.kill()
    before = segments_of(await footage(js, settings))

    segmenter = start_segmenter(settings)
    await publish(js, settings, packets[200:])
    events = await wait_for(js, settings, complete(10), segmenter)
    segments = segments_of(events)
    assert len(before) >= 4 and segments[:len(before)] == before
    assert [(s.first_seq, s.frames) for s in segments] == [(30 * i, 30) for i in range(10)], "lost or duplicated"
    check_back_to_back(segments)
    check_stored(settings, segments)
    assert len(gaps_of(events)) == 1, "a restart is not a gap"
    assert "resuming after stream sequence" in segmenter.log


async def test_replay_of_stored_chunks_stores_and_announces_nothing_twice(js, settings, clip, start_segmenter):
    """Chunks stored and announced whose acks were lost (kill -9 between announce and ack), here forced by
    winding the consumer back to the start: the replay skips what the footage stream says is stored."""
    await register(js, settings)
    stall = {"SPECTARE_SEGMENTER__STALL_TIMEOUT_S": "4"}
    segmenter = start_segmenter(settings, **stall)
    anchor = time.time() - 20
    packets = clip.session_packets(CAM, "s1", anchor)
    await publish(js, settings, [clip.stream_info(CAM, "s1", anchor), *packets[:100]])
    await wait_for(js, settings, lambda ev: len(segments_of(ev)) >= 3, segmenter)
    assert segmenter.stop() == 0
    before = await footage(js, settings)
    assert [type(e) for _, e in before] == [Segment] * 3, "chunk 90.. is still open: no stall yet"
    names = settings.names
    config = (await js.consumer_info(names.media_stream, consumer_name(CAM))).config
    await js.delete_consumer(names.media_stream, consumer_name(CAM))
    config.deliver_policy, config.opt_start_seq = DeliverPolicy.ALL, None
    await js.add_consumer(names.media_stream, config)  # every ack lost

    segmenter = start_segmenter(settings, **stall)
    await publish(js, settings, packets[100:])
    events = await wait_for(js, settings, complete(10), segmenter)
    segments = segments_of(events)
    assert [(s.first_seq, s.frames) for s in segments] == [(30 * i, 30) for i in range(10)]
    check_back_to_back(segments)
    check_stored(settings, segments)
    assert segmenter.log.count("stored footage/") == 7, "only chunks 90.. are built again"


@pytest.fixture
def own_s3(tmp_path):
    """An S3 server of this test's own, to stop and start: `own_s3[0]` is the one running at the end."""
    servers = [SeaweedS3(tmp_path / "s3", tmp_path / "s3.log", S3Credentials.generate())]
    servers[0].start()
    yield servers
    servers[-1].stop()


async def test_s3_outage_is_waited_out(js, nats_server, own_s3, clip, start_segmenter, tmp_path):
    """S3 goes away for ~15 s: the camera goes on live, then a backlog arrives at once, more than the
    consumer may hold un-acked (JetStream holds the rest back: no stall, no gap). When S3 is back,
    everything is stored, in order."""
    s3 = own_s3[0]
    settings = settings_for(nats_server, s3, tmp_path / "state")
    await ensure_topology(js, settings)  # the `js` fixture prepared another prefix
    await register(js, settings)
    segmenter = start_segmenter(settings, SPECTARE_SEGMENTER__MAX_ACK_PENDING="1000")
    anchor = time.time()
    packets = clip.session_packets(CAM, "s1", anchor, loops=4)  # 80 s, 1200 packets, one session
    await publish(js, settings, [clip.stream_info(CAM, "s1", anchor), *packets[:95]])  # 6.3 s
    await wait_for(js, settings, lambda ev: len(segments_of(ev)) >= 3, segmenter)

    live = asyncio.create_task(publish(js, settings, packets[95:245], speed=1.0))  # 10 s, live
    await asyncio.to_thread(s3.stop)
    await live
    await publish(js, settings, packets[245:])  # 64 s at once
    await asyncio.sleep(3 * STALL_S)
    names = settings.names
    consumer = await js.consumer_info(names.media_stream, consumer_name(CAM))
    assert consumer.num_ack_pending == 1000 and consumer.num_pending > 0, "delivery is held back"
    events = await footage(js, settings)
    assert len(segments_of(events)) <= 4 and not gaps_of(events), "nothing stored, and no stall either"

    own_s3.append(SeaweedS3(s3.data_dir, tmp_path / "s3-again.log", s3.credentials, port=s3.port))
    await asyncio.to_thread(own_s3[-1].start)
    events = await wait_for(js, settings, complete(40), segmenter, timeout=60)
    segments = segments_of(events)
    assert [(s.first_seq, s.frames) for s in segments] == [(30 * i, 30) for i in range(40)]
    check_back_to_back(segments)
    check_stored(settings, segments)
    assert len(gaps_of(events)) == 1, "an S3 outage is not a gap in the footage"
    assert segmenter.log.count("S3 uploads failing") == 1
    assert "S3 uploads working again" in segmenter.log


async def test_garbage_is_terminated_counted_and_survived(js, settings, clip, start_segmenter):
    await register(js, settings)
    segmenter = start_segmenter(settings)
    anchor = time.time() - 20
    packets = clip.session_packets(CAM, "s1", anchor)
    names = settings.names
    garbage = [(names.packets(CAM), b"\xc1\xc1 not msgpack", f"{CAM}:junk:1"),
               (names.packets(CAM), Segment.create(camera=CAM, bucket="b", key="k", session="x", first_seq=0,
                                                   last_seq=0, start=0.0, end=1.0, frames=1, bytes=1, codec="h264",
                                                   width=2, height=2).encode(), f"{CAM}:junk:2"),
               (names.info(CAM), b"\x93\x01\x02\x03", f"{CAM}:junk:3")]
    await publish(js, settings, [clip.stream_info(CAM, "s1", anchor), *packets[:70], *garbage[:2], *packets[70:100],
                                 garbage[2], *packets[100:]])
    events = await wait_for(js, settings, complete(10), segmenter)
    segments = segments_of(events)
    assert [(s.first_seq, s.frames) for s in segments] == [(30 * i, 30) for i in range(10)]
    check_back_to_back(segments)
    check_stored(settings, segments)
    log = segmenter.log
    assert log.count(f"undecodable message on {names.packets(CAM)}") == 1, "one line per camera and kind"
    assert log.count(f"undecodable message on {names.info(CAM)}") == 1
    consumer = await js.consumer_info(names.media_stream, consumer_name(CAM))
    stream = await js.stream_info(names.media_stream)
    assert consumer.num_ack_pending == 0 and consumer.ack_floor.stream_seq == stream.state.last_seq, \
        "garbage must not hold back the ack floor"
    assert segmenter.stop() == 0
    assert "3 garbage" in segmenter.log


async def test_session_change_hole_and_stall_are_gaps(js, settings, clip, start_segmenter):
    await register(js, settings)
    segmenter = start_segmenter(settings)
    a1 = time.time() - 30
    a2 = a1 + 8.0
    s1 = clip.session_packets(CAM, "s1", a1)[:75]  # 5 s
    s2 = clip.session_packets(CAM, "s2", a2)[5:60]  # starts 5 frames before a keyframe
    s2 = [p for p in s2 if p.seq != 40]  # one packet the publisher gave up on
    await publish(js, settings, [clip.stream_info(CAM, "s1", a1), *s1, clip.stream_info(CAM, "s2", a2), *s2])
    events = await wait_for(js, settings, complete(5), segmenter)

    segments = segments_of(events)
    assert [(s.session, s.first_seq, s.last_seq) for s in segments] == [
        ("s1", 0, 29), ("s1", 30, 59), ("s1", 60, 74), ("s2", 15, 39), ("s2", 45, 59)]
    assert segments[2].end == pytest.approx(a1 + 5.0)
    assert (segments[3].start, segments[3].end) == (pytest.approx(a2 + 1.0), pytest.approx(a2 + 40 / FPS))
    check_stored(settings, segments)
    gaps = [(g.start, g.end, g.reason, g.session) for g in gaps_of(events)]
    assert gaps == [
        (segments[2].end, None, "new stream session s2", "s1"),
        (segments[2].end, segments[3].start, "new stream session s2", "s1"),
        (segments[3].end, None, "packets 40..40 lost", "s2"),
        (segments[3].end, segments[4].start, "packets 40..40 lost", "s2"),
        (segments[4].end, None, f"no packets for {STALL_S:g}s", "s2"),
    ]
    kinds = [type(e).__name__ for _, e in events]
    assert kinds == ["Segment"] * 3 + ["Gap"] * 2 + ["Segment"] + ["Gap"] * 2 + ["Segment", "Gap"]


async def test_restart_after_a_stall_closes_the_open_gap(js, settings, clip, start_segmenter):
    """The open gap survives a restart: read back from the footage stream, closed by the next chunk."""
    await register(js, settings)
    segmenter = start_segmenter(settings)
    anchor = time.time() - 20
    packets = clip.session_packets(CAM, "s1", anchor)
    await publish(js, settings, [clip.stream_info(CAM, "s1", anchor), *packets[:65]])
    await wait_for(js, settings, complete(3), segmenter)
    assert segmenter.stop() == 0
    segmenter = start_segmenter(settings)
    await publish(js, settings, packets[65:])  # the same session goes on: its info is not sent again
    events = await wait_for(js, settings, complete(11), segmenter)
    segments = segments_of(events)
    # Frames 65..74 cannot start a chunk; the next keyframe (75, at 5 s) does, and closes the gap.
    assert [(s.first_seq, s.last_seq) for s in segments] == [
        (0, 29), (30, 59), (60, 64), *[(75 + 30 * i, 104 + 30 * i) for i in range(7)], (285, 299)]
    gaps = [(g.start, g.end) for g in gaps_of(events)]
    assert gaps == [(segments[2].end, None), (segments[2].end, segments[3].start), (segments[-1].end, None)]
    assert segments[2].end == pytest.approx(anchor + 65 / FPS) and segments[3].start == pytest.approx(anchor + 5)
    check_back_to_back(segments[3:])
    check_stored(settings, segments)


async def test_info_lookup_finds_the_stream_info_of_an_older_session(js, settings, clip):
    """A restart mid-session: the session's StreamInfo was acked long ago and must be found on the stream."""
    names = settings.names
    anchor = time.time()
    await publish(js, settings, [clip.stream_info(CAM, "s1", anchor), *clip.session_packets(CAM, "s1", anchor)[:5],
                                 (names.info(CAM), b"garbage", "junk"), clip.stream_info(CAM, "s2", anchor + 1),
                                 clip.stream_info(CAM, "s3", anchor + 2)])
    lookup = InfoLookup(js, settings, CAM)
    assert (await lookup.find("s3", 10**9)).started_at == anchor + 2
    assert (await lookup.find("s1", 10**9)).started_at == anchor
    assert await lookup.find("s2", 2) is None, "only infos published before the packet count"
    assert await lookup.find("nope", 10**9) is None


# -- reading the consumer -------------------------------------------------------------------------

async def open_puller(js, settings: Settings, **options) -> Puller:
    await open_consumer(js, settings, SegmenterSettings(), CAM, None)
    puller = Puller(js._nc, js, settings.names.media_stream, consumer_name(CAM),
                    **{"batch": 256, "expires_s": 5.0, **options})
    await puller.start()
    return puller


async def take(puller: Puller, count: int, timeout: float = 10.0) -> list[int]:
    """Seqs of the next `count` packets, pulled as the segmenter does (a request open, what arrived taken)."""
    loop = asyncio.get_running_loop()
    seqs: list[int] = []
    deadline = loop.time() + timeout
    while len(seqs) < count and loop.time() < deadline:
        await puller.pull()
        await puller.wait(loop.time() + 0.05)
        seqs += [Packet.decode(msg.data).seq for msg in puller.take()]
    return seqs


async def test_puller_streams_messages_through_long_lived_pull_requests(js, settings, clip):
    """What is stored while a pull request is open arrives without another request; an expired request (408)
    is followed by the next; a backlog larger than a request's batch comes in full requests, in order."""
    packets = clip.session_packets(CAM, "s1", time.time())[:48]
    puller = await open_puller(js, settings, batch=10, expires_s=1.0)
    try:
        await publish(js, settings, packets[:3])
        assert await take(puller, 3) == [0, 1, 2]
        await publish(js, settings, packets[3:6])
        assert await take(puller, 3) == [3, 4, 5]
        assert puller.requests == 1, "one request carried every message"
        await asyncio.sleep(1.5)  # the request expires
        await publish(js, settings, packets[6:8])
        assert await take(puller, 2) == [6, 7]
        assert puller.requests == 2
        await publish(js, settings, packets[8:48])  # the open request takes 8 more, then it is full
        await puller.pull()
        await puller.wait(asyncio.get_running_loop().time() + 5)
        assert puller.backlog, "a full request ends at once and says more is waiting"
        assert [Packet.decode(msg.data).seq for msg in puller.take()] == list(range(8, 26))
        assert await take(puller, 22) == list(range(26, 48))
        assert puller.requests == 6
    finally:
        await puller.close()


async def test_puller_grows_its_byte_limit_for_a_large_message(js, settings, clip):
    packet = max(clip.session_packets(CAM, "s1", time.time())[:30], key=lambda p: len(p.data))
    puller = await open_puller(js, settings, max_bytes=1000)
    try:
        await publish(js, settings, [packet])
        assert await take(puller, 1) == [packet.seq]
        assert puller.max_bytes >= len(packet.data)
    finally:
        await puller.close()


async def test_puller_reports_a_deleted_consumer(js, settings):
    """A deleted consumer answers its waiting pull request with 409 Consumer Deleted; the next request, with no
    consumer to take it, gets 503. The server queues a pull request for the consumer's own goroutine, and only
    requests already taken from that queue (counted in num_waiting) get the 409: a consumer deleted before it
    took the request drops it unanswered. So the consumer is deleted once it holds the request."""
    names = settings.names
    loop = asyncio.get_running_loop()
    puller = await open_puller(js, settings, expires_s=60.0)
    try:
        await puller.pull()

        async def request_waiting() -> bool:
            return (await js.consumer_info(names.media_stream, consumer_name(CAM))).num_waiting == 1

        await eventually(request_waiting, 30, interval=0.01, what="the pull request waiting at the consumer")
        await js.delete_consumer(names.media_stream, consumer_name(CAM))
        await puller.wait(loop.time() + 30)  # returns when the request ends; the limit only catches a lost 409
        assert puller.refused is not None and puller.refused.startswith("409"), puller.refused
        await puller.pull()  # no consumer to answer
        await puller.wait(loop.time() + 30)
        assert puller.refused is not None and puller.refused.startswith("503"), puller.refused
    finally:
        await puller.close()


async def test_puller_replaces_a_request_whose_end_never_comes(js, settings):
    """A pull request can be lost without an answer (a consumer deleted before it took the request, a server
    restart): after its expiry and a grace period it counts as ended, and `pull()` sends the next one."""
    stream = settings.names.media_stream
    swallowed: list[bytes] = []

    async def swallow(msg) -> None:  # takes the request, never answers
        swallowed.append(msg.data)

    sink = await js._nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.nobody", cb=swallow)
    puller = Puller(js._nc, js, stream, "nobody", batch=10, expires_s=0.5)
    await puller.start()
    try:
        await puller.pull()
        await puller.pull()  # still open: no second request
        assert puller.requests == 1
        await eventually(lambda: len(swallowed) == 1, 10, interval=0.01, what="the request at its 'consumer'")
        await asyncio.sleep(0.5 + PULL_GRACE_S + 0.2)  # no answer came by the request's deadline
        await puller.pull()
        assert puller.requests == 2 and puller.refused is None
        await eventually(lambda: len(swallowed) == 2, 10, interval=0.01, what="the next request")
    finally:
        await puller.close()
        await sink.unsubscribe()


# -- storing ----------------------------------------------------------------------------------------

async def test_a_chunk_over_5_mib_is_stored_with_one_put(js, settings):
    """The SDK would upload it in parts (four requests); a multipart object's ETag ends in -<parts>."""
    s3 = s3_client(settings.s3)
    sink = ChunkSink(CAM, Shared(settings, SegmenterSettings(), js, s3, js._nc), CameraStats(), Remuxer())
    data = os.urandom(6 * 1024 * 1024)
    await sink._upload("footage/big.mp4", data)
    stat = s3.stat_object(settings.s3.bucket, "footage/big.mp4")
    assert stat.size == len(data)
    assert "-" not in stat.etag.strip('"')


# -- settings -------------------------------------------------------------------------------------

def test_settings_from_environment_and_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.startswith("SPECTARE_")]:
        monkeypatch.delenv(var)
    assert SegmenterSettings().stall_timeout_s == 15.0
    (tmp_path / "spectare.toml").write_text("[segmenter]\nstall_timeout_s = 7.5\nmax_cameras = 3\n")
    assert (load_segmenter_settings().stall_timeout_s, load_segmenter_settings().max_cameras) == (7.5, 3)
    monkeypatch.setenv("SPECTARE_SEGMENTER__STALL_TIMEOUT_S", "2")
    assert load_segmenter_settings().stall_timeout_s == 2.0
    monkeypatch.setenv("SPECTARE_SEGMENTER__FETCH_BATCH", "0")
    with pytest.raises(Exception, match="segmenter.fetch_batch"):
        load_segmenter_settings()
