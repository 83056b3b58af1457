"""Cluster benchmark (issue 16): `spectare up --cluster 3` recording N test cameras while one process after another
is killed -9, and what the clustered bus costs against one nats-server, both measured in one run.

1. Throughput, one server: the default stack (one nats-server, R1, one process of each service) records the
   cameras for `--cluster-seconds`; the nats-server's CPU (/proc) per camera-minute of video stored.
2. Throughput, the cluster: the `--cluster 3` stack (three nats-servers over routes, R3 streams and buckets,
   2 ingest, 2 segmenters, 2 detectors, the indexer, 2 API replicas), the same window; the three nodes' CPU.
3. Faults on that cluster, in order, none restarted but the node at the end: (a) the nats-server leading MEDIA,
   (b) an ingest worker holding cameras, (c) a segmenter, (d) a detector, (e) an API replica while a client streams
   detections from it (the client then turns to the other replica); then the killed node started again.

Per fault, over the stretch from just before the kill until every camera records again:
- seconds of video missing per camera: what no stored chunk covers (the union of its chunks' wall times, so a hole
  counts whether or not a gap was announced), max and median over the cameras;
- chunks that do not decode cleanly (`ffmpeg -v error` prints anything), and chunk keys announced twice;
- seconds recorded twice (two chunks of one camera over the same wall time: two workers recording it);
- detections stored twice (the same camera, session, keyframe and index) and keyframes the detectors gave up
  (JetStream's max-deliveries advisory); at the end, the detectors' consumer must have nothing left un-acked;
- seconds until every camera records again (the end of its last hole after the kill) and until each has a chunk
  announced past the kill (what a viewer waits for);
- for (e), seconds until the other replica answers `/cameras` and streams its first detection, and the detections
  the client saw on neither replica (server-sent events carry no resume point: what is published while a client
  reconnects is not sent to it);
- for the restart, seconds until every stream (KV buckets included) has three current replicas again.
"""

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from spectare.core.bus import connect
from spectare.core.config import Settings, load_settings
from spectare.core.leases import LeaseTable
from spectare.core.registry import CameraRegistry
from spectare.core.store import s3_client
from spectare.detector.service import CONSUMER as DETECTOR_CONSUMER
from spectare.local.servers import NatsServer
from spectare.local.stack import DEMO_SOURCE, LocalStack, StackOptions
from spectare.local.testcam import RtspTestCamera, make_test_clip
from spectare.schemas import CameraConfig, Detection, Gap, Segment, decode_one_of

from .cpu import CpuMeter
from .recording import FAILOVER_CLIP, FPS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SEGMENT_SECONDS = 2
DETECTED_CAMERAS = 1  # cameras with detection on (a CPU detector on every one would swamp two shared cores)
BEFORE_S = 2 * SEGMENT_SECONDS  # each fault's stretch starts this long before its kill
HOLE_TOLERANCE_S = 0.02  # under one frame (1/15 s): rounding between back-to-back chunks, not lost video
RECORDING_AGAIN_TIMEOUT_S = 120.0
FAULTS = ("a", "b", "c", "d", "e", "restart")
GOALS = {"a": "0 s", "b": "<= lease TTL + 2 s", "c": "0 s", "d": "0 s", "e": "0 s", "restart": "0 s, R3 back"}


def add_arguments(parser) -> None:
    group = parser.add_argument_group("cluster")
    group.add_argument("--cluster-cameras", type=int, default=8, help="test cameras recording (default 8)")
    group.add_argument("--cluster-seconds", type=float, default=60.0,
                       help="seconds of each throughput window, one server and the cluster (default 60)")
    group.add_argument("--cluster-watch", type=float, default=12.0,
                       help="seconds recording is watched after each kill before the next (default 12)")
    group.add_argument("--cluster-keep", action="store_true",
                       help="keep the work folder (logs, stores) after a run that succeeded too")
    group.add_argument("--cluster-faults", default=",".join(FAULTS),
                       help=f"the faults, in this order: some of {','.join(FAULTS)} (default all; 'restart' needs 'a')")


def run(args) -> None:
    clip = make_test_clip(DEMO_SOURCE, FAILOVER_CLIP, width=640, height=360, fps=FPS, gop_seconds=1, seconds=30)
    cameras = [f"cam{i}" for i in range(1, args.cluster_cameras + 1)]
    faults = [f.strip() for f in str(args.cluster_faults).split(",") if f.strip()]
    if set(faults) - set(FAULTS) or ("restart" in faults and "a" not in faults):
        raise SystemExit(f"cluster benchmark: --cluster-faults takes some of {','.join(FAULTS)}; 'restart' needs 'a'")
    faults = [f for f in FAULTS if f in faults]
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="spectare-bench-cluster-"))
    print(f"cluster benchmark: work folder (logs) {work}"
          + ("" if args.cluster_keep else ", removed when the run succeeds"), flush=True)
    single = None
    if args.cluster_seconds > 0:  # 0: the faults alone
        print(f"cluster benchmark: one nats-server, {len(cameras)} cameras, {args.cluster_seconds:.0f} s ...",
              flush=True)
        single = asyncio.run(_throughput_only(work / "single", clip, cameras, args.cluster_seconds))
        print(f"  {single}", flush=True)
    print(f"cluster benchmark: three nats-servers, R3, two of every service; {args.cluster_seconds:.0f} s, "
          "then the faults ...", flush=True)
    clustered = asyncio.run(_cluster_run(work / "cluster", clip, cameras, args.cluster_seconds, args.cluster_watch,
                                         faults))
    if not args.cluster_keep:
        shutil.rmtree(work, ignore_errors=True)
    ratio = (single["cam_min_per_nats_cpu_s"] / clustered["throughput"]["cam_min_per_nats_cpu_s"]
             if single and clustered["throughput"] and clustered["throughput"]["cam_min_per_nats_cpu_s"] else None)
    result = {
        "benchmark": "cluster",
        "clip": "640x360 15 fps H.264, 1 s GOP (assets/demo/market-street.mp4, first 30 s, looped)",
        "cameras": len(cameras), "detected_cameras": DETECTED_CAMERAS, "segment_seconds": SEGMENT_SECONDS,
        "throughput_seconds": args.cluster_seconds, "watch_seconds": args.cluster_watch,
        "cpus": os.cpu_count(), "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": f"make bench BENCH=\"cluster --cluster-cameras {args.cluster_cameras} --cluster-seconds "
                   f"{args.cluster_seconds:g} --cluster-watch {args.cluster_watch:g}"
                   + (f" --cluster-faults {','.join(faults)}" if len(faults) < len(FAULTS) else "") + "\"",
        "single": single,
        **clustered,
        "single_to_cluster_ratio": round(ratio, 2) if ratio else None,
        "goals": GOALS,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "cluster.md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {RESULTS / 'cluster.json'} and cluster.md")


# -- what a fault cost: pure -------------------------------------------------------------------------------------

Span = tuple[float, float]


def holes(spans: list[Span], since: float, until: float, tolerance: float = HOLE_TOLERANCE_S) -> list[Span]:
    """The stretches of [since, until] no span covers, each longer than `tolerance`, in time order."""
    found, covered = [], since
    for start, end in sorted(spans):
        if start >= until:
            break
        if start - covered > tolerance:
            found.append((covered, start))
        covered = max(covered, end)
    if until - covered > tolerance:
        found.append((covered, until))
    return found


def twice_covered(spans: list[Span], tolerance: float = HOLE_TOLERANCE_S) -> float:
    """Seconds covered by more than one span (overlaps under `tolerance` each are rounding)."""
    total, reach = 0.0, None
    for start, end in sorted(spans):
        if reach is not None and reach - start > tolerance:
            total += min(reach, end) - start
        reach = end if reach is None else max(reach, end)
    return total


def back_after(found: list[Span], fault_at: float) -> float:
    """Seconds from the kill until the camera records again: the end of its last hole, 0 with none."""
    return max((end - fault_at for _, end in found if end > fault_at), default=0.0)


def spread(values: list[float]) -> dict[str, float]:
    return {"max": round(max(values), 2), "median": round(statistics.median(values), 2)} if values \
        else {"max": 0.0, "median": 0.0}


# -- what the cluster stored --------------------------------------------------------------------------------------

@dataclass
class Announced:
    """A chunk and when the FOOTAGE stream stored its announcement."""

    segment: Segment
    at: float


@dataclass
class Footage:
    chunks: dict[str, list[Announced]] = field(default_factory=dict)  # per camera
    gaps: dict[str, list[Gap]] = field(default_factory=dict)


async def _retrying(what: Callable[[], Awaitable[Any]], tries: int = 40) -> Any:
    """A JetStream read, tried again while a stream has no leader (a node just lost)."""
    for _ in range(tries - 1):
        try:
            return await what()
        except Exception:  # noqa: BLE001 - the last try raises
            await asyncio.sleep(0.5)
    return await what()


async def read_footage_log(js: JetStreamContext, settings: Settings) -> Footage:
    """Every chunk and gap announced so far, with the chunks' announcement times (the stored message's)."""

    async def read() -> Footage:
        names = settings.names
        footage = Footage()
        for msg in await _read_stream(js, names.footage("*"), names.footage_stream):
            item = decode_one_of(msg.data, Segment, Gap)
            if isinstance(item, Segment):
                footage.chunks.setdefault(item.camera, []).append(Announced(item, _stored_at(msg)))
            else:
                footage.gaps.setdefault(item.camera, []).append(item)
        return footage

    return await _retrying(read)


async def _read_stream(js: JetStreamContext, subject: str, stream: str) -> list:
    """Every message stored on `subject`, through an ephemeral consumer that acks nothing."""
    sub = await js.pull_subscribe(subject, stream=stream, config=ConsumerConfig(
        ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0))
    found = []
    try:
        while True:
            try:
                batch = await sub.fetch(500, timeout=2.0)
            except TimeoutError:
                break
            found += batch
            if batch[-1].metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return found


async def read_detections(js: JetStreamContext, settings: Settings) -> list[tuple[Detection, float]]:
    """Every detection stored, with when it was stored."""

    async def read() -> list[tuple[Detection, float]]:
        names = settings.names
        return [(Detection.decode(m.data), _stored_at(m))
                for m in await _read_stream(js, names.detections("*", "*"), names.detections_stream)]

    return await _retrying(read)


def _stored_at(msg) -> float:
    """When the stream stored a message (Unix seconds)."""
    return msg.metadata.timestamp.timestamp()


def undecodable(settings: Settings, segments: list[Segment]) -> list[str]:
    """Keys of the chunks whose decode prints an error, or that cannot be read back."""
    client, bad = s3_client(settings.s3), []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "chunk.mp4"
        for segment in segments:
            try:
                client.fget_object(segment.bucket, segment.key, str(path))
            except Exception:  # noqa: BLE001 - a chunk announced but not readable is a bad chunk
                bad.append(segment.key)
                continue
            errors = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                                    capture_output=True, text=True, timeout=120).stderr
            if errors.strip():
                bad.append(segment.key)
    return bad


# -- the runs ----------------------------------------------------------------------------------------------------

class Running:
    """A LocalStack (not supervised: a killed process stays dead) recording the test cameras."""

    def __init__(self, work: Path, clip: Path, cameras: list[str], cluster: int) -> None:
        self.work, self.cameras = work, cameras
        self.camera = RtspTestCamera({name: clip for name in cameras}, work / "testcam.log")
        state = work / "state"
        # The default prefix: `spectare up` tells its processes the servers, not a prefix.
        self.stack = LocalStack(StackOptions(state, cluster=cluster), load_settings(state_dir=state))
        self.nc: NATS | None = None

    async def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self.camera.start()
        self.info = await asyncio.to_thread(self.stack.start)  # runs its own event loops
        self.settings = self.stack.settings
        self.nc = await connect(self.settings, "bench-cluster")
        self.js = self.nc.jetstream()
        registry = await CameraRegistry.open(self.js, self.settings)
        for i, name in enumerate(self.cameras):
            await registry.add(CameraConfig(name=name, url=self.camera.url(name), segment_seconds=SEGMENT_SECONDS,
                                            detect=i < DETECTED_CAMERAS))
        await self.recording_past(time.time() + SEGMENT_SECONDS, 120, "every camera recording")

    async def stop(self) -> None:
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.close(), 5)
        await asyncio.to_thread(self.stack.stop)
        self.camera.stop()

    def nats_nodes(self) -> dict[str, NatsServer]:
        return {name: s for name, s in self.stack.servers.items() if isinstance(s, NatsServer)}

    def nats_pids(self) -> list[int]:
        return [pid for s in self.nats_nodes().values() if (pid := s.process.pid) is not None]

    async def recording_past(self, moment: float, timeout: float, what: str) -> float:
        """Wait until every camera has a chunk ending after `moment`; the wall time it took from `moment`."""
        deadline = time.monotonic() + timeout
        while True:
            footage = await read_footage_log(self.js, self.settings)
            if all(any(c.segment.end > moment for c in footage.chunks.get(cam, [])) for cam in self.cameras):
                return time.time() - moment
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster benchmark: {what} not within {timeout:.0f} s")
            await asyncio.sleep(1.0)

    async def throughput(self, seconds: float) -> dict:
        """Camera-minutes of video stored over `seconds` and the nats-servers' CPU meanwhile."""
        meter = CpuMeter({"nats": self.nats_pids()})
        began = time.time()
        meter.start()
        await asyncio.sleep(seconds)
        used = meter.stop()["nats"]
        ended = time.time()
        await self.recording_past(ended, 60, "chunks past the window")
        footage = await read_footage_log(self.js, self.settings)
        video_s = sum((ended - began) - sum(e - s for s, e in holes(_spans(footage, cam), began, ended))
                      for cam in self.cameras)
        cam_min = video_s / 60
        return {"nodes": len(self.nats_pids()), "seconds": round(ended - began, 1),
                "camera_minutes": round(cam_min, 2), "nats_cpu_s": round(used, 2),
                "cam_min_per_nats_cpu_s": round(cam_min / used, 2) if used else None}


def _spans(footage: Footage, camera: str) -> list[Span]:
    return [(c.segment.start, c.segment.end) for c in footage.chunks.get(camera, [])]


async def _throughput_only(work: Path, clip: Path, cameras: list[str], seconds: float) -> dict:
    running = Running(work, clip, cameras, cluster=1)
    try:
        await running.start()
        return await running.throughput(seconds)
    finally:
        await running.stop()


@dataclass
class Fault:
    name: str
    what: str
    at: float
    until: float = 0.0
    cameras_moved: list[str] = field(default_factory=list)
    extra: dict = field(default_factory=dict)


async def _cluster_run(work: Path, clip: Path, cameras: list[str], seconds: float, watch: float,
                       names: list[str]) -> dict:
    running = Running(work, clip, cameras, cluster=3)
    try:
        await running.start()
        throughput = await running.throughput(seconds) if seconds > 0 else None
        print(f"  {throughput}", flush=True)
        given_up: list[float] = []  # when JetStream gave up a keyframe (max deliveries reached)
        advisory = (f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{running.settings.names.keyframes_stream}."
                    f"{DETECTOR_CONSUMER}")

        async def on_given_up(_msg) -> None:
            given_up.append(time.time())

        assert running.nc is not None
        await running.nc.subscribe(advisory, cb=on_given_up)
        steps = {"a": lambda: _fault_a(running, watch), "b": lambda: _fault_worker(running, "b", "ingest", watch),
                 "c": lambda: _fault_worker(running, "c", "segmenter", watch),
                 "d": lambda: _fault_detector(running, watch), "e": lambda: _fault_e(running, watch),
                 "restart": lambda: _restart(running, watch)}
        faults = [await steps[name]() for name in names]
        settled = await _detector_settled(running)
        footage = await read_footage_log(running.js, running.settings)
        detections = await read_detections(running.js, running.settings)
        rows = [_judge(running, f, footage, detections, given_up) for f in faults]
        for row in rows:
            print(f"  {row['fault']}: {json.dumps({k: v for k, v in row.items() if k != 'fault'})}", flush=True)
        keys = Counter(c.segment.key for chunks in footage.chunks.values() for c in chunks)
        return {"throughput": throughput, "faults": rows, "detector_consumer_at_end": settled,
                "chunk_keys_announced_twice_in_run": sum(1 for n in keys.values() if n > 1),
                "lease_ttl_s": running.settings.leases.ttl_s}
    finally:
        await running.stop()


async def _media_leader(running: Running) -> str:
    async def leader() -> str:
        info = await running.js.stream_info(running.settings.names.media_stream)
        if info.cluster is None or not info.cluster.leader:
            raise RuntimeError("MEDIA has no leader yet")
        return info.cluster.leader

    return await _retrying(leader)


async def _settle(running: Running, fault: Fault, watch: float) -> Fault:
    """Watch `watch` seconds, then wait until every camera has recorded past that point."""
    await asyncio.sleep(watch)
    mark = time.time()
    await running.recording_past(mark, RECORDING_AGAIN_TIMEOUT_S, f"every camera recording after ({fault.name})")
    fault.until = mark
    print(f"  ({fault.name}) {fault.what}: recording again", flush=True)
    return fault


async def _fault_a(running: Running, watch: float) -> Fault:
    """The worst case of losing MEDIA's leader: first every stream and consumer is led from that node too (the
    lease bucket, the footage log, the segmenters' consumers, ...), so everything elects at once."""
    leader = await _media_leader(running)
    led = await _gather_leadership(running, leader)
    await asyncio.sleep(2 * SEGMENT_SECONDS)  # the new leaders settled
    fault = Fault("a", f"nats-server {leader} (MEDIA's leader) killed -9", time.time())
    running.nats_nodes()[f"nats-{leader}"].kill()
    fault = await _settle(running, fault, watch)
    fault.extra.update(led)
    fault.extra["new_media_leader"] = await _media_leader(running)
    return fault


async def _gather_leadership(running: Running, node: str) -> dict:
    """Ask every stream and consumer led elsewhere to hand its leadership to `node` (a stepdown with a preferred
    server); how many `node` then leads."""
    assert running.nc is not None
    streams = await _retrying(running.js.streams_info)
    for info in streams:
        name = info.config.name
        request = json.dumps({"placement": {"preferred": node}}).encode()
        if info.cluster and info.cluster.leader != node:
            with contextlib.suppress(Exception):
                await running.nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{name}", request, timeout=5)
        for consumer in await _retrying(lambda name=name: running.js.consumers_info(name)):
            if consumer.cluster and consumer.cluster.leader != node:
                with contextlib.suppress(Exception):
                    await running.nc.request(f"$JS.API.CONSUMER.LEADER.STEPDOWN.{name}.{consumer.name}", request,
                                             timeout=5)
    await asyncio.sleep(2)
    streams = await _retrying(running.js.streams_info)
    consumers = [c for info in streams
                 for c in await _retrying(lambda n=info.config.name: running.js.consumers_info(n))]
    return {"streams_it_led": sum(1 for i in streams if i.cluster and i.cluster.leader == node),
            "streams": len(streams),
            "consumers_it_led": sum(1 for c in consumers if c.cluster and c.cluster.leader == node),
            "consumers": len(consumers)}


async def _fault_worker(running: Running, name: str, role: str, watch: float) -> Fault:
    """Kill -9 for good the `role` worker holding the most cameras; the other takes them over after the TTL."""
    leases = await LeaseTable.open(running.js, running.settings, role, "bench-observer")
    owners = await _retrying(leases.owners)
    victim = Counter(owners.values()).most_common(1)[0][0]  # "<host>-<role>-<slot>", as `spectare up` names it
    slot = int(victim.rsplit("-", 1)[1])
    fault = Fault(name, f"{role} worker {victim} killed -9 for good", time.time(),
                  cameras_moved=sorted(c for c, w in owners.items() if w == victim))
    running.stack.processes[role if slot == 0 else f"{role}-{slot}"].kill()
    return await _settle(running, fault, leases.ttl_s + watch)


async def _fault_detector(running: Running, watch: float) -> Fault:
    """Kill -9 one of the two detectors (they share one consumer: its keyframes in flight go to the other after
    ack_wait)."""
    info = await _retrying(lambda: running.js.consumer_info(running.settings.names.keyframes_stream,
                                                            DETECTOR_CONSUMER))
    fault = Fault("d", "one detector killed -9 for good", time.time())
    running.stack.processes["detector"].kill()
    return await _settle(running, fault, max(watch, (info.config.ack_wait or 0) + 5))


async def _fault_e(running: Running, watch: float) -> Fault:
    """A client streams detections from one API replica, which is killed; the client turns to the other."""
    first, second = running.info["api"]["replicas"][:2]
    token = (running.stack.state_dir / "api-token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    seen: list[tuple[str, float]] = []  # (detection id, when the client got it)
    fault = Fault("e", f"API replica {first} killed -9 while a client streams detections from it", 0.0)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=60)) as http:
        async with http.stream("GET", f"{first}/detections/stream", headers=headers) as stream:
            lines = stream.aiter_lines()
            await asyncio.wait_for(_next_detection(lines, seen), 120)
            fault.at = time.time()
            running.stack.processes["api"].kill()
            with contextlib.suppress(httpx.HTTPError, EOFError, TimeoutError):
                while True:
                    await asyncio.wait_for(_next_detection(lines, seen), 30)
        broken = time.time()
        last_on_first = seen[-1][1]
        answered = None
        while answered is None and time.time() - broken < 60:
            with contextlib.suppress(httpx.HTTPError):
                reply = await http.get(f"{second}/cameras", headers=headers)
                if reply.status_code == 200 and {c["name"] for c in reply.json()} >= set(running.cameras):
                    answered = time.time()
            if answered is None:
                await asyncio.sleep(0.2)
        async with http.stream("GET", f"{second}/detections/stream", headers=headers) as stream:
            subscribed = time.time()
            count = len(seen)
            await asyncio.wait_for(_next_detection(stream.aiter_lines(), seen), 120)
        first_on_second = seen[count]
    fault.extra = {
        "client_saw_the_break_after_s": round(broken - fault.at, 2),
        "other_replica_answers_after_s": round(answered - fault.at, 2) if answered else None,
        "other_replica_first_detection_after_s": round(first_on_second[1] - fault.at, 2),
        "client_window": (last_on_first, subscribed),
        "seen_ids": [i for i, _ in seen],
    }
    return await _settle(running, fault, watch)


async def _next_detection(lines, seen: list[tuple[str, float]]) -> None:
    async for line in lines:
        if line.startswith("data:"):
            d = Detection.model_validate_json(line[5:])
            seen.append((_detection_id(d), time.time()))
            return
    raise EOFError("the event stream ended")


def _detection_id(d: Detection) -> str:
    return f"{d.camera}:{d.session}:{d.seq}:{d.index}"


async def _restart(running: Running, watch: float) -> Fault:
    down = next(name for name, node in running.nats_nodes().items() if not node.alive())
    fault = Fault("restart", f"nats-server {down.removeprefix('nats-')} started again", time.time())
    running.nats_nodes()[down].start()

    async def all_current() -> bool:
        """Every R3 stream (KV buckets are streams too) has a leader and two current followers."""
        for info in await running.js.streams_info():
            if info.config.num_replicas != 3:
                fault.extra.setdefault("streams_not_r3", []).append(info.config.name)
                continue
            replicas = info.cluster.replicas if info.cluster else None
            if not info.cluster or not info.cluster.leader or len(replicas or []) != 2 \
                    or not all(r.current for r in replicas or []):
                return False
        return True

    deadline = time.monotonic() + 120
    while not (current := await _retrying(all_current)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    fault.extra["r3_current_after_s"] = round(time.time() - fault.at, 2) if current else None
    fault.extra["streams_not_r3"] = sorted(set(fault.extra.get("streams_not_r3", [])))
    return await _settle(running, fault, watch)


async def _detector_settled(running: Running) -> dict:
    """The detectors' consumer at the end: what is left to hand out, what is out and not yet acked, and how many
    keyframes were handed out more than once over the run."""
    info = await _retrying(lambda: running.js.consumer_info(running.settings.names.keyframes_stream,
                                                            DETECTOR_CONSUMER))
    return {"num_pending": info.num_pending, "num_ack_pending": info.num_ack_pending,
            "num_redelivered": info.num_redelivered}


def _judge(running: Running, fault: Fault, footage: Footage, detections: list[tuple[Detection, float]],
           given_up: list[float]) -> dict:
    since, until = fault.at - BEFORE_S, fault.until
    missing, back, announced_back, twice, chunks = {}, {}, {}, {}, []
    found_per_camera = {}
    for camera in running.cameras:
        spans = _spans(footage, camera)
        # Not before the camera's first chunk: a fault right after the start does not own the start.
        start = max(since, min(spans)[0]) if spans else since
        found = found_per_camera[camera] = holes(spans, start, until)
        missing[camera] = sum(e - s for s, e in found)
        back[camera] = back_after(found, fault.at)
        twice[camera] = twice_covered([s for s in spans if s[1] > since and s[0] < until])
        mine = [c for c in footage.chunks.get(camera, []) if c.segment.end > since and c.segment.start < until]
        chunks += [c.segment for c in mine]
        past = [c.at for c in mine if c.segment.end > fault.at]
        announced_back[camera] = min(past) - fault.at if past else None
    keys = Counter(s.key for s in chunks)
    in_window = [d for d, _ in detections if since <= d.time < until]  # by keyframe time: redeliveries land late
    ids = Counter(_detection_id(d) for d in in_window)
    row: dict[str, Any] = {
        "fault": fault.name, "what": fault.what, "goal": GOALS[fault.name],
        "missing_s": spread(list(missing.values())), "missing_s_per_camera": {c: round(v, 2) for c, v in
                                                                               missing.items()},
        "chunks_judged": len(chunks), "undecodable_chunks": len(undecodable(running.settings, chunks)),
        "chunk_keys_announced_twice": sum(1 for n in keys.values() if n > 1),
        "recorded_twice_s": round(sum(twice.values()), 2),
        "detections": len(in_window), "detections_stored_twice": sum(1 for n in ids.values() if n > 1),
        "keyframes_given_up": sum(1 for t in given_up if since <= t < until),
        "all_record_again_after_s": round(max(back.values()), 2),
        "all_announced_again_after_s": round(max(v for v in announced_back.values() if v is not None), 2)
        if all(v is not None for v in announced_back.values()) else None,
        "announced_again_s_per_camera": {c: None if v is None else round(v, 2) for c, v in announced_back.items()},
        "window": [round(since, 2), round(until, 2), round(fault.at, 2)],
        "holes": {c: [[round(s, 2), round(e, 2)] for s, e in found] for c, found in found_per_camera.items() if found},
    }
    if fault.cameras_moved:
        row["cameras_moved"] = fault.cameras_moved
        row["missing_s_moved"] = spread([missing[c] for c in fault.cameras_moved])
        row["missing_s_others"] = spread([missing[c] for c in running.cameras if c not in fault.cameras_moved])
    extra = dict(fault.extra)
    if "client_window" in extra:
        low, high = extra.pop("client_window")
        seen = set(extra.pop("seen_ids"))
        extra["detections_the_client_missed"] = sum(
            1 for d, at in detections if low < at < high and _detection_id(d) not in seen)
    row.update(extra)
    return row


# -- the table ---------------------------------------------------------------------------------------------------

def markdown(result: dict) -> str:
    """The results kept in the repository."""
    single, clustered = result["single"] or {}, result["throughput"] or {}
    lines = [
        f"# Cluster benchmark ({result['when']}, {result['cpus']} CPUs, load {result['load_before']} before, "
        f"{result['load_after']} after)",
        "",
        f"`{result['command']}`",
        "",
        f"{result['cameras']} RTSP test cameras ({result['clip']}), {result['segment_seconds']} s chunks, detection "
        f"on {result['detected_cameras']} (OpenCV YOLOv4-tiny on CPU). The cluster is `spectare up --cluster 3`'s: "
        "three nats-servers over routes on loopback (R3 streams and KV buckets), 2 ingest, 2 segmenters, "
        "2 detectors, the indexer, 2 API replicas; one SeaweedFS S3 server. Each process is killed -9 and left "
        "dead, in this order; the NATS node is started again at the end. Before (a), every stream and consumer "
        "hands its leadership to MEDIA's leader (a stepdown naming it), so its loss makes all of them elect at once "
        "(the lease bucket, the footage log, the segmenters' consumers...): the worst case of losing a node. "
        "Missing: seconds of each camera's wall "
        f"time from {BEFORE_S} s before the kill until it recorded again that no stored chunk covers. Back: from "
        "the kill until every camera's video resumes (the end of its last hole) / until every camera has a chunk "
        "announced past the kill.",
        "",
        "| fault | goal | missing max | missing median | undecodable | chunk keys twice | recorded twice | "
        "detections (twice) | keyframes given up | back (video) | announced again | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["faults"]:
        notes = []
        if "cameras_moved" in r:
            notes.append(f"its {len(r['cameras_moved'])} cameras: max {r['missing_s_moved']['max']} s, the others "
                         f"max {r['missing_s_others']['max']} s (lease TTL {result['lease_ttl_s']:g} s)")
        if "new_media_leader" in r:
            notes.append(f"it led {r['streams_it_led']} of {r['streams']} streams and {r['consumers_it_led']} of "
                         f"{r['consumers']} consumers; new MEDIA leader {r['new_media_leader']}")
        if "other_replica_answers_after_s" in r:
            notes.append(f"client saw the break after {r['client_saw_the_break_after_s']} s; the other replica "
                         f"answered /cameras after {r['other_replica_answers_after_s']} s, streamed its first "
                         f"detection after {r['other_replica_first_detection_after_s']} s; detections the client "
                         f"missed while reconnecting: {r['detections_the_client_missed']}")
        if "r3_current_after_s" in r:
            notes.append(f"every stream at 3 current replicas after {r['r3_current_after_s']} s")
        lines.append(
            f"| ({r['fault']}) {r['what']} | {r['goal']} | {r['missing_s']['max']} s | {r['missing_s']['median']} s | "
            f"{r['undecodable_chunks']}/{r['chunks_judged']} | {r['chunk_keys_announced_twice']} | "
            f"{r['recorded_twice_s']} s | {r['detections']} ({r['detections_stored_twice']}) | "
            f"{r['keyframes_given_up']} | {r['all_record_again_after_s']} s | {r['all_announced_again_after_s']} s | "
            f"{'; '.join(notes)} |")
    end = result["detector_consumer_at_end"]
    lines += [
        "",
        f"Detectors' consumer at the end: {end['num_pending']} keyframes pending, {end['num_ack_pending']} un-acked, "
        f"{end['num_redelivered']} redelivered. Chunk keys announced twice over the whole run: "
        f"{result['chunk_keys_announced_twice_in_run']}.",
    ]
    if not (single and clustered):
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "## The bus's throughput",
        "",
        "Camera-minutes of video stored per CPU-second of the nats-server(s) (/proc, user + system), the same "
        f"cameras over {result['throughput_seconds']:.0f} s with no fault, one stack after the other in this run.",
        "",
        "| bus | nodes | camera-minutes | nats CPU s | camera-minutes per nats CPU s |",
        "|---|---|---|---|---|",
        f"| one nats-server, R1 | {single['nodes']} | {single['camera_minutes']} | {single['nats_cpu_s']} | "
        f"{single['cam_min_per_nats_cpu_s']} |",
        f"| three nats-servers, R3 | {clustered['nodes']} | {clustered['camera_minutes']} | "
        f"{clustered['nats_cpu_s']} | {clustered['cam_min_per_nats_cpu_s']} |",
        "",
        f"One server stores {result['single_to_cluster_ratio']}x the video per CPU-second that the R3 cluster does "
        "(every message is written by three nodes and sent between them).",
    ]
    return "\n".join(lines) + "\n"
