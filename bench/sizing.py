"""Sizing benchmark: what one camera costs the whole stack, measured, and a sizing for 100 and 1,000 cameras
computed from those measurements (docs/SCALING.md explains it).

Each phase starts everything from nothing: nats-server (one with R1 streams, or a three-node cluster with R3
streams and buckets), SeaweedFS, the RTSP test camera serving the recording benchmark's clip (the demo footage
at 1080p15, ~4 Mbit/s, 1 s GOP) on N mounts, and one process each of ingest, segmenter, detector (OpenCV
YOLOv4-tiny on CPU, motion gate on) and indexer. After a warm-up (every camera publishing, a chunk of each
stored, the detector through its first keyframes) the counters below are read at the edges of `samples`
windows; every reported number is the median of the windows' values, all from one run:

- CPU-seconds (user + system, /proc) of each process per camera-minute;
- bytes through NATS: client connections' in/out per service (/connz of every node), /varz totals, and
  route bytes between nodes (/routez, the sum of what every node sent);
- JetStream: bytes appended to each stream per camera per day (appended messages x their mean size; what a
  stream holds is bounded by its limits, see `held_bytes`);
- S3: object bytes per camera per day, chunks (mean chunk size x chunks a day) and snapshots;
- the motion gate's pass share, detections, events and chunks per camera-minute (the indexer's rows).

Before the phases, the detector's steps (decode and motion thumbnail, snapshot JPEG, the model) are timed apart in
this process on the clip's keyframes: the service's CPU per keyframe less the model's is what a detector whose
model runs on a GPU still spends on its CPU. `--sizing-reproject` measures nothing and computes the sizing again
from bench/results/sizing.json (after changing `Assumptions`).
"""

import asyncio
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spectare.core.bus import connect, ensure_topology
from spectare.core.config import Settings, load_settings, settings_env
from spectare.core.registry import CameraRegistry
from spectare.core.store import ensure_bucket, s3_client
from spectare.detector.gate import THUMB_WIDTH, hide
from spectare.detector.models import load_detector
from spectare.detector.service import CONSUMER
from spectare.detector.settings import DetectorSettings
from spectare.detector.snapshot import render
from spectare.local.process import ManagedProcess, free_port
from spectare.local.servers import NatsCluster, NatsServer, S3Credentials, SeaweedS3
from spectare.local.stack import DEMO_SOURCE
from spectare.local.testcam import RtspTestCamera, make_test_clip
from spectare.media.frames import decode_keyframe, thumbnail, to_bgr
from spectare.schemas import CameraConfig, Keyframe
from spectare.schemas.keys import FOOTAGE_PREFIX, SNAPSHOT_PREFIX

from .cpu import cpu_seconds
from .detection import clip_keyframes
from .recording import CLIP, FPS, SEGMENT_SECONDS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SERVICES = ("ingest", "segmenter", "detector", "indexer")
GOP_SECONDS = 1
DAY = 86_400
PREFIX = "bench"  # of every subject, stream and bucket name of a phase
MODEL_BATCH = 4  # keyframes per model call when timing the model alone
DETECTOR_TALLIES = ("keyframes", "still", "inferred", "detections", "snapshots", "model_seconds")


def add_arguments(parser) -> None:
    group = parser.add_argument_group("sizing")
    group.add_argument("--sizing-cameras", default="1,4", help="comma-separated camera counts (default 1,4)")
    group.add_argument("--sizing-replicas", default="1,3",
                       help="stream replicas per phase: 1 (one nats-server) and/or 3 (three-node cluster)")
    group.add_argument("--sizing-samples", type=int, default=3, help="measured windows per phase (default 3)")
    group.add_argument("--sizing-seconds", type=float, default=60.0, help="seconds per window (default 60)")
    group.add_argument("--sizing-reproject", action="store_true",
                       help="measure nothing: compute the sizing again from bench/results/sizing.json")


def run(args) -> None:
    if args.sizing_reproject:
        result = json.loads((RESULTS / "sizing.json").read_text())
        _write(result)
        return
    counts = [int(c) for c in str(args.sizing_cameras).split(",") if c.strip()]
    replicas = [int(r) for r in str(args.sizing_replicas).split(",") if r.strip()]
    if set(replicas) - {1, 3}:
        raise SystemExit("sizing benchmark: --sizing-replicas takes 1 and/or 3")
    clip = make_test_clip(DEMO_SOURCE, CLIP, width=1920, height=1080, fps=FPS, gop_seconds=GOP_SECONDS,
                          seconds=30, bitrate_kbps=4000)
    load_before = os.getloadavg()[0]
    parts = detector_cpu_parts(clip)
    print(f"sizing: detector steps, CPU ms per keyframe: {parts}", flush=True)
    phases = []
    for r in replicas:
        for count in counts:
            print(f"sizing: {count} camera(s), R{r}, {args.sizing_samples} x {args.sizing_seconds:.0f} s ...",
                  flush=True)
            phases.append(asyncio.run(_phase(count, r, args.sizing_samples, args.sizing_seconds, clip)))
            print(json.dumps(phases[-1]["median"], indent=1), flush=True)
    result = {
        "benchmark": "sizing",
        "clip": "1920x1080 15 fps H.264 ~4 Mbit/s, 1 s GOP (assets/demo/market-street.mp4, first 30 s, looped)",
        "segment_seconds": SEGMENT_SECONDS, "samples": args.sizing_samples, "sample_seconds": args.sizing_seconds,
        "cpus": os.cpu_count(), "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "make bench BENCH=\"sizing --sizing-cameras "
                   f"{args.sizing_cameras} --sizing-replicas {args.sizing_replicas} --sizing-samples "
                   f"{args.sizing_samples} --sizing-seconds {args.sizing_seconds:g}\"",
        "detector_parts": parts,
        "limits": stream_limits(load_settings()),
        "phases": phases,
    }
    _write(result)


def _write(result: dict) -> None:
    """The sizing computed from `result`'s measurements, and both files written."""
    result["projection"] = project(result, json.loads((RESULTS / "detection-gpu.json").read_text()),
                                   json.loads((RESULTS / "indexing.json").read_text()), Assumptions())
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sizing.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "sizing.md").write_text(markdown(result))
    print(markdown(result))
    print(f"wrote {RESULTS / 'sizing.json'} and sizing.md")


# -- what the detector does on its CPU besides the model ---------------------------------------------------

def detector_cpu_parts(clip: Path, rounds: int = 3) -> dict:
    """CPU ms per keyframe of the detector's steps, timed apart on the clip's real 1080p keyframes: decode (PyAV),
    BGR picture and motion thumbnail; the snapshot JPEG (default width and quality); the default model (OpenCV
    YOLOv4-tiny on CPU) in batches of 4. The service's CPU per keyframe minus the model's is what a detector
    whose model runs on a GPU still spends on its CPU."""
    det = DetectorSettings()
    model = load_detector(det)
    keyframes = [Keyframe(camera="bench", session="bench", seq=i, wall_time=0.0, codec="h264", width=w, height=h,
                          data=data) for i, (data, w, h) in enumerate(clip_keyframes(clip))]
    decode = jpeg = infer = 0.0
    pictures = []
    for _ in range(rounds):
        for keyframe in keyframes:
            began = time.process_time()
            frame = decode_keyframe(keyframe)
            picture = to_bgr(frame)
            hide(thumbnail(frame, THUMB_WIDTH), [])
            decoded = time.process_time()
            render(picture, [], det.snapshot_max_width, det.snapshot_quality)
            decode += decoded - began
            jpeg += time.process_time() - decoded
            pictures.append(picture)
    for i in range(0, len(pictures), MODEL_BATCH):
        began = time.process_time()
        model.detect(pictures[i:i + MODEL_BATCH], det.min_score)
        infer += time.process_time() - began
    n = len(pictures)
    return {"keyframes": len(keyframes), "rounds": rounds, "model": f"{model.name} on {model.device}",
            "model_batch": MODEL_BATCH,
            "decode_gate_ms_per_keyframe": round(1000 * decode / n, 2),
            "snapshot_ms_per_keyframe": round(1000 * jpeg / n, 2),
            "model_cpu_ms_per_keyframe": round(1000 * infer / n, 2)}


def stream_limits(settings: Settings) -> dict:
    """Each stream's retention as configured (spectare.core.bus.stream_configs with the default settings)."""
    from spectare.core.bus import stream_configs  # the same configs the services create

    return {c.name: {"max_age_s": c.max_age or None, "max_msgs_per_subject": c.max_msgs_per_subject
                     if (c.max_msgs_per_subject or 0) > 0 else None} for c in stream_configs(settings)}


# -- the NATS side: one server or a cluster ------------------------------------------------------------------

@dataclass
class Bus:
    """The nats-server(s) of a phase: client URL(s), process ids and monitoring endpoints."""

    url: str
    pids: list[int]
    monitors: list[str]
    stop: Callable[[], None]


def _single(work: Path) -> Bus:
    server = NatsServer(work / "nats", work / "nats.log", monitor_port=free_port())
    server.start()
    assert server.process.pid is not None
    return Bus(server.url, [server.process.pid], [f"http://127.0.0.1:{server.monitor_port}"], server.stop)


def _cluster(work: Path) -> Bus:
    cluster = NatsCluster(work / "nats", work, size=3)
    cluster.start()
    pids = [node.process.pid for node in cluster.nodes]
    assert all(pid is not None for pid in pids)
    return Bus(cluster.url, [pid for pid in pids if pid is not None],
               [f"http://127.0.0.1:{node.monitor_port}" for node in cluster.nodes], cluster.stop)


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def _get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read().decode()


# -- one phase --------------------------------------------------------------------------------------------

@dataclass
class Reading:
    """Every counter of a phase at one moment."""

    at: float
    cpu: dict[str, float]
    client_bytes: dict[str, list[int]]  # connection name -> [in, out] (bytes the server received, sent)
    varz: list[int]  # [in, out], all nodes
    route_out: int  # bytes every node sent over its routes
    streams: dict[str, dict]  # stream -> {last_seq, bytes, messages}
    objects: dict[str, list[int]]  # S3 prefix -> [count, bytes]
    detector: dict[str, float]
    backlog: int


async def _phase(count: int, replicas: int, samples: int, seconds: float, clip: Path) -> dict:
    work = Path(tempfile.mkdtemp(prefix="spectare-bench-"))
    names = [f"size{i:02d}" for i in range(count)]
    s3 = SeaweedS3(work / "s3", work / "s3.log", S3Credentials.generate())
    camera = RtspTestCamera({n: clip for n in names}, work / "testcam.log")
    processes: dict[str, ManagedProcess] = {}
    bus: Bus | None = None
    load = [os.getloadavg()[0]]
    try:
        bus = _cluster(work) if replicas == 3 else _single(work)
        s3.start()
        camera.start()
        settings = load_settings(prefix=PREFIX, state_dir=work, nats={"url": bus.url},
                                 streams={"replicas": replicas},
                                 s3={"endpoint": s3.endpoint, "access_key": s3.credentials.access_key,
                                     "secret_key": s3.credentials.secret_key, "bucket": "sizing"})
        ensure_bucket(settings.s3)
        nc = await connect(settings, "bench")
        js = nc.jetstream()
        await ensure_topology(js, settings)
        registry = await CameraRegistry.open(js, settings)
        for name in names:
            await registry.add(CameraConfig(name=name, url=camera.url(name), segment_seconds=SEGMENT_SECONDS))
        metrics_port = free_port()
        env = {**settings_env(settings), "SPECTARE_LOG_LEVEL": "WARNING",
               "SPECTARE_STREAMS__REPLICAS": str(replicas),
               "SPECTARE_INGEST__MAX_CAMERAS": str(count), "SPECTARE_SEGMENTER__MAX_CAMERAS": str(count)}
        extra_env = {"detector": {"SPECTARE_METRICS_PORT": str(metrics_port)},
                     "indexer": {"SPECTARE_INDEXER__DATABASE": str(work / "index.duckdb")}}
        for service in SERVICES:
            process = ManagedProcess(service, [sys.executable, "-m", f"spectare.{service}"], work / f"{service}.log",
                                     env={**env, **extra_env.get(service, {})})
            process.start()
            processes[service] = process
        s3c = s3_client(settings.s3)

        def pids() -> dict[str, list[int]]:
            groups = {name: [p.pid] for name, p in processes.items() if p.pid is not None}
            assert bus is not None and s3.process.pid is not None and camera.process is not None
            nodes = {f"nats-node{i}": [pid] for i, pid in enumerate(bus.pids)} if len(bus.pids) > 1 else {}
            return {**groups, "nats-server": bus.pids, **nodes, "s3": [s3.process.pid],
                    "camera": [camera.process.pid or 0]}

        async def read() -> Reading:
            for name, process in processes.items():
                if not process.alive():
                    raise RuntimeError(f"{name} exited: {process.log_tail()}")
            assert bus is not None
            at = time.monotonic()
            cpu = {name: sum(cpu_seconds(p) for p in group) for name, group in pids().items()}
            clients: dict[str, list[int]] = {}
            varz, route_out = [0, 0], 0
            for monitor in bus.monitors:
                connz = await asyncio.to_thread(_get_json, f"{monitor}/connz?limit=4096")
                for conn in connz.get("connections", []):
                    name = conn.get("name") or "?"
                    totals = clients.setdefault(name, [0, 0])
                    totals[0] += conn.get("in_bytes", 0)
                    totals[1] += conn.get("out_bytes", 0)
                v = await asyncio.to_thread(_get_json, f"{monitor}/varz")
                varz[0] += v.get("in_bytes", 0)
                varz[1] += v.get("out_bytes", 0)
                routez = await asyncio.to_thread(_get_json, f"{monitor}/routez")
                route_out += sum(r.get("out_bytes", 0) for r in routez.get("routes") or [])
            streams = {}
            for info in await js.streams_info():
                streams[info.config.name or ""] = {"last_seq": info.state.last_seq, "bytes": info.state.bytes,
                                             "messages": info.state.messages}
            objects = await asyncio.to_thread(_objects, s3c, settings.s3.bucket)
            text = await asyncio.to_thread(_get_text, f"http://127.0.0.1:{metrics_port}/metrics")
            consumer = await js.consumer_info(settings.names.keyframes_stream, CONSUMER)
            return Reading(at, cpu, clients, varz, route_out, streams, objects, _tallies(text),
                           consumer.num_pending + consumer.num_ack_pending)

        await _warm_up(js, settings, count, metrics_port, processes)
        readings = [await read()]
        for _ in range(samples):
            await asyncio.sleep(seconds)
            readings.append(await read())
            load.append(os.getloadavg()[0])
        streams_end = readings[-1].streams
        await nc.close()
    finally:
        for process in processes.values():
            process.stop()
        camera.stop()
        s3.stop()
        if bus is not None:
            bus.stop()
        shutil.rmtree(work, ignore_errors=True)

    windows = [window(a, b, count) for a, b in zip(readings, readings[1:], strict=False)]
    return {"cameras": count, "replicas": replicas, "nats_nodes": len(bus.pids),
            "load_1min": [round(x, 2) for x in load], "windows": windows, "median": medians(windows),
            "streams_at_end": {name: {"bytes": s["bytes"], "messages": s["messages"]}
                               for name, s in streams_end.items()}}


async def _warm_up(js, settings: Settings, count: int, metrics_port: int,
                   processes: dict[str, ManagedProcess]) -> None:
    """Until every camera publishes packets, each has a stored chunk and the detector has taken keyframes; then
    one more chunk length, so that the first (partial) chunks are behind."""
    deadline = time.monotonic() + 180
    while True:
        for name, process in processes.items():
            if not process.alive():
                raise RuntimeError(f"{name} exited: {process.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError("sizing: the stack did not warm up within 180 s")
        try:
            media = await js.stream_info(settings.names.media_stream, subjects_filter=settings.names.packets("*"))
            footage = await js.stream_info(settings.names.footage_stream, subjects_filter=settings.names.footage("*"))
            tallies = _tallies(await asyncio.to_thread(_get_text, f"http://127.0.0.1:{metrics_port}/metrics"))
        except Exception:  # the detector's /metrics is not up yet
            await asyncio.sleep(1)
            continue
        if (len(media.state.subjects or {}) >= count and len(footage.state.subjects or {}) >= count
                and tallies.get("keyframes", 0) >= count):
            break
        await asyncio.sleep(1)
    await asyncio.sleep(SEGMENT_SECONDS + 2)


def _objects(client, bucket: str) -> dict[str, list[int]]:
    found = {}
    for prefix in (FOOTAGE_PREFIX, SNAPSHOT_PREFIX):
        sizes = [o.size or 0 for o in client.list_objects(bucket, prefix=f"{prefix}/", recursive=True)]
        found[prefix] = [len(sizes), sum(sizes)]
    return found


def _tallies(metrics_text: str) -> dict[str, float]:
    """The detector's tallies from its Prometheus text (`spectare_detector_<tally>_total <value>`)."""
    found = {}
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        tally = name.removeprefix("spectare_detector_").removesuffix("_total")
        if name.startswith("spectare_detector_") and name.endswith("_total") and tally in DETECTOR_TALLIES:
            found[tally] = float(value)
    return found


# -- pure arithmetic on readings ------------------------------------------------------------------------

def _stream_kind(name: str) -> str:
    """`BENCH_MEDIA` -> `MEDIA`, `KV_bench_motion` -> `KV motion`: names without the benchmark's prefix."""
    if name.startswith("KV_"):
        return "KV " + name[3:].removeprefix(f"{PREFIX}_")
    return name.removeprefix(f"{PREFIX.upper()}_")


def window(a: Reading, b: Reading, cameras: int) -> dict[str, float]:
    """Per-camera rates between two readings."""
    seconds = b.at - a.at
    cam_minutes = cameras * seconds / 60
    cam_seconds = cameras * seconds
    out: dict[str, float] = {"seconds": round(seconds, 1)}
    for group in b.cpu:
        out[f"cpu_s_per_cam_min.{group}"] = (b.cpu[group] - a.cpu[group]) / cam_minutes
    out["cpu_s_per_cam_min.spectare"] = sum(out[f"cpu_s_per_cam_min.{s}"] for s in SERVICES)
    nodes = [v for k, v in out.items() if k.startswith("cpu_s_per_cam_min.nats-node")]
    total = out["cpu_s_per_cam_min.nats-server"]
    out["nats_busiest_node_share"] = max(nodes) / total if nodes and total else 1.0
    # Client connections by service: `spectare-ingest` -> ingest; bytes the server took in / sent out.
    for name in b.client_bytes:
        before = a.client_bytes.get(name, [0, 0])
        service = name.removeprefix("spectare-")
        for i, way in enumerate(("in", "out")):
            key = f"nats_client_mbit_s_per_cam.{service}.{way}"
            out[key] = out.get(key, 0.0) + (b.client_bytes[name][i] - before[i]) * 8 / 1e6 / cam_seconds
    for way in ("in", "out"):
        out[f"nats_client_mbit_s_per_cam.all.{way}"] = sum(
            v for k, v in out.items() if k.startswith("nats_client_mbit_s_per_cam.") and k.endswith(f".{way}")
            and ".bench." not in k and ".all." not in k)
    out["nats_varz_mbit_s_per_cam.in"] = (b.varz[0] - a.varz[0]) * 8 / 1e6 / cam_seconds
    out["nats_varz_mbit_s_per_cam.out"] = (b.varz[1] - a.varz[1]) * 8 / 1e6 / cam_seconds
    out["nats_route_mbit_s_per_cam"] = (b.route_out - a.route_out) * 8 / 1e6 / cam_seconds
    for name, state in b.streams.items():
        earlier = a.streams.get(name, {"last_seq": 0})
        mean = state["bytes"] / state["messages"] if state["messages"] else 0.0
        kind = _stream_kind(name)
        appended = state["last_seq"] - earlier["last_seq"]
        out[f"js_msgs_per_cam_min.{kind}"] = appended / cam_minutes
        out[f"js_gb_per_cam_day.{kind}"] = appended * mean / cam_seconds * DAY / 1e9
        out[f"js_held_mb_per_cam.{kind}"] = state["bytes"] / cameras / 1e6
    chunks = b.objects[FOOTAGE_PREFIX][0] - a.objects[FOOTAGE_PREFIX][0]
    chunk_bytes = b.objects[FOOTAGE_PREFIX][1] - a.objects[FOOTAGE_PREFIX][1]
    out["s3_chunks_per_cam_min"] = chunks / cam_minutes
    out["s3_gb_per_cam_day.footage"] = (chunk_bytes / chunks if chunks else 0.0) * DAY / SEGMENT_SECONDS / 1e9
    snaps = b.objects[SNAPSHOT_PREFIX][0] - a.objects[SNAPSHOT_PREFIX][0]
    out["s3_snapshots_per_cam_min"] = snaps / cam_minutes
    out["s3_gb_per_cam_day.snapshots"] = (b.objects[SNAPSHOT_PREFIX][1] - a.objects[SNAPSHOT_PREFIX][1]) \
        / cam_seconds * DAY / 1e9
    taken = b.detector.get("keyframes", 0) - a.detector.get("keyframes", 0)
    inferred = b.detector.get("inferred", 0) - a.detector.get("inferred", 0)
    out["detector_keyframes_per_cam_min"] = taken / cam_minutes
    out["detector_gate_pass_share"] = inferred / taken if taken else 0.0
    out["detector_cpu_ms_per_keyframe"] = 1000 * (b.cpu["detector"] - a.cpu["detector"]) / taken if taken else 0.0
    out["detector_model_ms_per_inferred"] = (1000 * (b.detector.get("model_seconds", 0)
                                                     - a.detector.get("model_seconds", 0)) / inferred
                                             if inferred else 0.0)
    out["detections_per_cam_min"] = (b.detector.get("detections", 0) - a.detector.get("detections", 0)) / cam_minutes
    out["detector_backlog_at_end"] = b.backlog
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def medians(windows: list[dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for w in windows for k in w})
    return {k: round(statistics.median(w.get(k, 0.0) for w in windows), 4) for k in keys}


# -- from measurements to a sizing ----------------------------------------------------------------------

@dataclass(frozen=True)
class Assumptions:
    """What the sizing takes as given besides the measurements (docs/SCALING.md says why)."""

    cameras: tuple[int, ...] = (100, 1000)
    busy: float = 0.5  # cores and GPUs provisioned so that each is at most half busy (bursts, a lost node)
    node_cores: int = 16  # nodes counted as 16-core machines
    retention_days: float = 30.0  # footage, snapshots, detections and events kept this long
    s3_raw_factor: float = 1.5  # raw disk per usable byte: erasure coding 8 data + 4 parity (MinIO EC:4, 12 drives)
    nats_nodes: int = 3  # R3 on three nodes: every node holds a replica of every stream
    cameras_per_worker: int = 64  # [ingest] / [segmenter] max_cameras default
    # bench/results/detection-gpu.json: ultralytics yolov8n on cuda:0. The detector batches up to 8 keyframes
    # ([detector] batch_size); the batch-4 time bounds that, the batch-16 one is what batch_size 16 would give.
    gpu_batches: tuple[int, int] = (4, 16)


def per_camera(phases: list[dict], key: str, marginal: bool) -> float:
    """A per-camera rate for many cameras from the phases of one replica count: with `marginal`, the cost of each
    camera beyond the fewest measured ((n2 v2 - n1 v1) / (n2 - n1): fixed costs of a process left out), else the
    rate at the most cameras; the rate at the most cameras when the marginal one is not positive."""
    ordered = sorted(phases, key=lambda p: p["cameras"])
    low, high = ordered[0], ordered[-1]
    v2 = high["median"].get(key, 0.0)
    if not marginal or low["cameras"] == high["cameras"]:
        return v2
    n1, n2 = low["cameras"], high["cameras"]
    m = (n2 * v2 - n1 * low["median"].get(key, 0.0)) / (n2 - n1)
    return m if m > 0 else v2


def index_row_bytes(indexing: dict) -> tuple[float, float]:
    """(bytes per detection row, bytes per chunk row) of the DuckDB index, from two databases of the indexing
    benchmark with the same chunks and different detections."""
    a, b = sorted(indexing["search"], key=lambda s: s["detections"])[:2]
    per_detection = (b["database_mb"] - a["database_mb"]) * 1e6 / (b["detections"] - a["detections"])
    per_chunk = (a["database_mb"] * 1e6 - a["detections"] * per_detection) / a["chunks"]
    return per_detection, per_chunk


def project(result: dict, gpu: dict, indexing: dict, assume: Assumptions) -> dict:
    """Cores, GPUs, network and disks for each camera count of `assume`, from the measured phases."""
    replicas = max(p["replicas"] for p in result["phases"])
    phases = [p for p in result["phases"] if p["replicas"] == replicas]
    median = max(phases, key=lambda p: p["cameras"])["median"]
    busiest = median.get("nats_busiest_node_share", 1.0)
    parts = result["detector_parts"]
    cpu = {g: per_camera(phases, f"cpu_s_per_cam_min.{g}", marginal=True)
           for g in (*SERVICES, "nats-server", "s3")}
    keyframes_s = median["detector_keyframes_per_cam_min"] / 60
    passed = median["detector_gate_pass_share"]
    # What the detector process spends on its CPU when the model runs elsewhere: its measured CPU per keyframe
    # less the model's share (timed alone, this machine, same run).
    host_ms = max(median["detector_cpu_ms_per_keyframe"] - passed * parts["model_cpu_ms_per_keyframe"],
                  parts["decode_gate_ms_per_keyframe"])
    gpu_row = next(m for m in gpu["models"] if m["device"].startswith("cuda"))
    gpu_ms, gpu_ms_big = (gpu_row[f"ms_per_frame_batch{b}"] for b in assume.gpu_batches)
    insert = {r["path"]: r["rows_per_s"] for r in indexing["insert"]["rows"]}
    end_to_end = insert["NATS -> indexer process (end to end)"]
    per_detection, per_chunk = index_row_bytes(indexing)
    rows_min = {k: median[f"js_msgs_per_cam_min.{k}"] for k in ("DETECTIONS", "EVENTS", "FOOTAGE")}
    limits = {_stream_kind(n): v for n, v in result["limits"].items()}
    js_held_gb = {}
    for kind, lim in limits.items():
        if kind in ("DETECTIONS", "EVENTS", "FOOTAGE"):
            held_s = assume.retention_days * DAY
        else:
            held_s = min(lim["max_age_s"] or DAY, (lim["max_msgs_per_subject"] or 10**9) * GOP_SECONDS)
        js_held_gb[kind] = median[f"js_gb_per_cam_day.{kind}"] * held_s / DAY
    js_held_gb["KV buckets"] = sum(v for k, v in median.items() if k.startswith("js_held_mb_per_cam.KV")) / 1000
    js_write_mb_s = sum(v for k, v in median.items() if k.startswith("js_gb_per_cam_day.")) * 1000 / DAY
    s3_gb_day = median["s3_gb_per_cam_day.footage"] + median["s3_gb_per_cam_day.snapshots"]
    sizing = []
    host_cpu_s_per_cam_min = keyframes_s * 60 * host_ms / 1000
    for n in assume.cameras:
        def cores(cpu_s_per_cam_min: float, n: int = n) -> dict:
            need = cpu_s_per_cam_min * n / 60
            return {"cores_busy": round(need, 1), "cores": max(1, math.ceil(need / assume.busy))}

        inferred_s = n * keyframes_s * passed
        client_in = median["nats_client_mbit_s_per_cam.all.in"] * n / 1000
        client_out = median["nats_client_mbit_s_per_cam.all.out"] * n / 1000
        route = median["nats_route_mbit_s_per_cam"] * n / 1000
        nats = cores(cpu["nats-server"])
        rows_s = sum(rows_min.values()) * n / 60
        db_rows = {k: v * n * 60 * 24 * assume.retention_days for k, v in rows_min.items()}
        ingest, segmenter, host = cores(cpu["ingest"]), cores(cpu["segmenter"]), cores(host_cpu_s_per_cam_min)
        sizing.append({
            "cameras": n,
            "ingest": {**ingest, "processes": math.ceil(n / assume.cameras_per_worker)},
            "segmenter": {**segmenter, "processes": math.ceil(n / assume.cameras_per_worker)},
            "detector_cpu_backend": cores(cpu["detector"]),
            "detector_gpu": {"keyframes_to_model_s": round(inferred_s, 1),
                             "gpus": max(1, math.ceil(inferred_s * gpu_ms / 1000 / assume.busy)),
                             "gpu_busy": round(inferred_s * gpu_ms / 1000, 2),
                             f"gpus_at_batch{assume.gpu_batches[1]}": max(
                                 1, math.ceil(inferred_s * gpu_ms_big / 1000 / assume.busy)),
                             **host},
            # One process: its cores from the indexing benchmark's end-to-end rate, reached on that run's CPUs (a
            # bound; here small batches every flush_interval_s make each row dearer than at that rate).
            "indexer": {"cores_busy": round(rows_s / end_to_end * indexing["cpus"], 1),
                        "cores": max(2, math.ceil(rows_s / end_to_end * indexing["cpus"] / assume.busy)),
                        "cores_busy_linear": round(cpu["indexer"] * n / 60, 1), "rows_s": round(rows_s),
                        "share_of_measured_insert": round(rows_s / end_to_end, 2),
                        "db_gb": round((db_rows["DETECTIONS"] + db_rows["EVENTS"]) * per_detection / 1e9
                                       + db_rows["FOOTAGE"] * per_chunk / 1e9, 1),
                        "detections_held": round(db_rows["DETECTIONS"])},
            "nats": {**nats, "nodes": assume.nats_nodes,
                     "cores_busiest_node": max(1, math.ceil(nats["cores"] * busiest)),
                     "client_in_gbit_s": round(client_in, 2), "client_out_gbit_s": round(client_out, 2),
                     "route_gbit_s": round(route, 2),
                     "per_node_in_gbit_s": round((client_in + route) / assume.nats_nodes, 2),
                     "per_node_out_gbit_s": round((client_out + route) / assume.nats_nodes, 2),
                     "disk_per_node_gb": {k: round(v * n, 1) for k, v in js_held_gb.items()},
                     "disk_per_node_total_gb": round(sum(js_held_gb.values()) * n, 1),
                     "disk_write_per_node_mb_s": round(js_write_mb_s * n, 1)},
            # 16-core nodes for ingest, segmenters and the GPU detectors' host side (GPUs in those nodes)
            "workers": {"nodes": math.ceil((ingest["cores"] + segmenter["cores"] + host["cores"]) / assume.node_cores)},
            "s3": {**cores(cpu["s3"]), "usable_tb": round(s3_gb_day * assume.retention_days * n / 1000, 1),
                   "raw_tb": round(s3_gb_day * assume.retention_days * n / 1000 * assume.s3_raw_factor, 1),
                   "write_mb_s": round(s3_gb_day * n * 1000 / DAY, 1),
                   "puts_s": round((median["s3_chunks_per_cam_min"] + median["s3_snapshots_per_cam_min"]) * n / 60,
                                   1)},
        })
    return {"replicas": replicas, "from_cameras": sorted(p["cameras"] for p in phases),
            "cpu_s_per_cam_min_marginal": {k: round(v, 4) for k, v in cpu.items()},
            "detector_host_cpu_ms_per_keyframe": round(host_ms, 1), "gpu_ms_per_keyframe": gpu_ms,
            f"gpu_ms_per_keyframe_batch{assume.gpu_batches[1]}": gpu_ms_big,
            "indexer_end_to_end_rows_s": end_to_end, "index_bytes_per_detection": round(per_detection, 1),
            "index_bytes_per_chunk": round(per_chunk, 1), "assumptions": vars(assume) | {"gpu": gpu.get("gpu")},
            "sizing": sizing}


def sizing_table(projection: dict) -> list[str]:
    """The projection as `service / quantity | 100 | 1000` rows, plus the rates and assumptions it used."""
    rows = projection["sizing"]
    lines = ["| service | quantity | " + " | ".join(f"{r['cameras']} cameras" for r in rows) + " |",
             "|---|---|" + "---|" * len(rows)]
    for service in (k for k in rows[0] if k != "cameras"):
        for quantity, value in rows[0][service].items():
            if isinstance(value, dict):
                for part in value:
                    lines.append(f"| {service} | {quantity} {part} | "
                                 + " | ".join(str(r[service][quantity][part]) for r in rows) + " |")
            else:
                lines.append(f"| {service} | {quantity} | " + " | ".join(str(r[service][quantity]) for r in rows)
                             + " |")
    rest = {k: v for k, v in projection.items() if k != "sizing"}
    return [*lines, "", "Inputs: " + json.dumps(rest)]


def markdown(result: dict) -> str:
    """Every measured number of the run, one column per phase, and the sizing computed from them."""
    parts = result["detector_parts"]
    lines = [f"# Sizing benchmark ({result['when']}, {result['cpus']} CPUs)", "",
             f"`{result['command']}`", "",
             f"{result['clip']}; {result['segment_seconds']} s chunks; one process each of ingest, segmenter, "
             "detector (OpenCV YOLOv4-tiny on CPU, motion gate on) and indexer; SeaweedFS S3. Each number is the "
             f"median of {result['samples']} windows of {result['sample_seconds']:g} s in one run. CPU is "
             "CPU-seconds (user + system from /proc), not wall time. The machine's 2 cores are shared with other "
             f"work: 1-minute load {result['load_before']} before the run, {result['load_after']} after "
             "(per window in sizing.json).", "",
             f"Detector steps timed alone (this process, the clip's {parts['keyframes']} keyframes x "
             f"{parts['rounds']}), CPU ms per keyframe: decode + motion thumbnail "
             f"{parts['decode_gate_ms_per_keyframe']}, snapshot JPEG {parts['snapshot_ms_per_keyframe']}, "
             f"model ({parts['model']}, batch {parts['model_batch']}) {parts['model_cpu_ms_per_keyframe']}.", "",
             "Stream limits (defaults): " + "; ".join(
                 f"{_stream_kind(n)} " + ", ".join(f"{k} {v:g}" for k, v in lim.items() if v) if any(lim.values())
                 else f"{_stream_kind(n)} no age limit (retention sweeps delete its messages with their chunks)"
                 for n, lim in result["limits"].items()) + ".", ""]
    keys = sorted({k for p in result["phases"] for k in p["median"] if k != "seconds"})
    head = [f"{p['cameras']} cam R{p['replicas']}" for p in result["phases"]]
    lines += ["## Measured, per camera", "", "| per camera | " + " | ".join(head) + " |",
              "|---|" + "---|" * len(head)]
    for key in keys:
        lines.append(f"| {key} | " + " | ".join(str(p["median"].get(key, "")) for p in result["phases"]) + " |")
    if "projection" in result:
        lines += ["", "## Sizing computed from these (docs/SCALING.md)", "", *sizing_table(result["projection"])]
    return "\n".join(lines) + "\n"
