"""Detection benchmark.

1. Model only: milliseconds per frame of each backend on real 1080p keyframes (batch 1 and batch 4):
   OpenCV DNN YOLOv4-tiny; ultralytics YOLOv8n (built from its yaml: random weights, the same
   arithmetic as the trained model) on CPU, and on CUDA when a GPU is there.
2. The detector service: N cameras (1, 4, 16) with a 1 s GOP, their real 1080p keyframes published on
   the KEYFRAMES stream as ingest would (wall time = now, cameras evenly staggered within each second),
   one detector process. Reports keyframes processed per second, per CPU-second of the detector (per
   core), and latency from the keyframe's wall time to the first detection of it arriving at a
   subscriber, p50/p95. Ingest is left out so its CPU does not compete on this small box.
"""

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av

from spectare.core.config import settings_env
from spectare.core.registry import CameraRegistry
from spectare.detector.service import CONSUMER
from spectare.local.process import ManagedProcess
from spectare.local.servers import NatsServer, S3Credentials, SeaweedS3
from spectare.local.stack import DEMO_SOURCE
from spectare.local.testcam import make_test_clip
from spectare.media.frames import decode_keyframe, to_bgr
from spectare.schemas import CameraConfig, Detection, Keyframe

from . import models
from .cpu import CpuMeter
from .servers import open_bench_bus

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CLIP = ROOT / "assets" / "bench" / "cam-1080p15.mp4"
FPS = 15


def add_arguments(parser) -> None:
    group = parser.add_argument_group("detection")
    group.add_argument("--detect-cameras", default="1,4,16", help="camera counts for the service (default 1,4,16)")
    group.add_argument("--detect-seconds", type=float, default=40.0, help="measured seconds per count (default 40)")
    group.add_argument("--model-frames", type=int, default=20, help="frames timed per backend (default 20)")


def run(args) -> None:
    clip = make_test_clip(DEMO_SOURCE, CLIP, width=1920, height=1080, fps=FPS, gop_seconds=1, seconds=30,
                          bitrate_kbps=4000)
    keyframes = clip_keyframes(clip)
    print(f"detection benchmark: {len(keyframes)} real 1080p keyframes", flush=True)
    images = [to_bgr(decode_keyframe(Keyframe(camera="bench", session="bench", seq=i, wall_time=0.0, codec="h264",
                                              width=w, height=h, data=data)))
              for i, (data, w, h) in enumerate(keyframes)]
    model_rows = models.measure(images, args.model_frames)
    service_rows = []
    for count in [int(c) for c in str(args.detect_cameras).split(",") if c.strip()]:
        print(f"detector service: {count} camera(s), {args.detect_seconds:.0f} s ...", flush=True)
        service_rows.append(asyncio.run(_service(count, args.detect_seconds, keyframes)))
        _print_service(service_rows)
    result = {"benchmark": "detection", "clip": "1920x1080 H.264 keyframes of real street footage, 1 s GOP",
              "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "models": model_rows, "service": service_rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "detection.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "detection.md").write_text(markdown(result))
    print(f"wrote {RESULTS / 'detection.json'} and detection.md")


def clip_keyframes(clip: Path) -> list[tuple[bytes, int, int]]:
    """(Annex-B data with parameter sets, width, height) of every keyframe of the clip."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        annexb = av.BitStreamFilterContext("h264_mp4toannexb", stream)
        found = []
        for packet in container.demux(stream):
            if packet.is_keyframe and packet.size:
                found += [(bytes(p), stream.width, stream.height) for p in annexb.filter(packet)]
    return found


async def _service(count: int, seconds: float, keyframes: list[tuple[bytes, int, int]]) -> dict:
    work = Path(tempfile.mkdtemp(prefix="spectare-bench-"))
    names = [f"cam{i:02d}" for i in range(count)]
    nats = NatsServer(work / "nats", work / "nats.log")
    s3 = SeaweedS3(work / "s3", work / "s3.log", S3Credentials.generate())
    detector: ManagedProcess | None = None
    try:
        nats.start()
        s3.start()
        settings, nc, js = await open_bench_bus(nats, s3, work)
        registry = await CameraRegistry.open(js, settings)
        for name in names:
            await registry.add(CameraConfig(name=name, url=f"rtsp://bench.invalid/{name}"))
        env = {**settings_env(settings), "SPECTARE_LOG_LEVEL": "WARNING"}
        detector = ManagedProcess("detector", [sys.executable, "-m", "spectare.detector"], work / "detector.log",
                                  env=env)
        detector.start()
        while True:  # the model is loaded and the consumer exists
            try:
                await js.consumer_info(settings.names.keyframes_stream, CONSUMER)
                break
            except Exception:
                await asyncio.sleep(0.2)

        first_seen: dict[tuple[str, int], float] = {}
        sent_at: dict[tuple[str, int], float] = {}

        async def on_detection(msg) -> None:
            d = Detection.decode(msg.data)
            first_seen.setdefault((d.camera, d.seq), time.time() - d.time)

        sub = await nc.subscribe(settings.names.detections("*", "*"), cb=on_detection)

        async def camera(index: int, name: str, stop_at: float) -> None:
            await asyncio.sleep(index / count)  # cameras' keyframes spread over the second
            seq, i = 0, index * 7
            while time.monotonic() < stop_at:
                data, width, height = keyframes[i % len(keyframes)]
                keyframe = Keyframe(camera=name, session="bench", seq=seq, wall_time=time.time(), codec="h264",
                                    width=width, height=height, data=data)
                await js.publish(settings.names.keyframes(name), keyframe.encode(),
                                 headers={"Nats-Msg-Id": f"{name}:bench:{seq}"})
                sent_at[(name, seq)] = keyframe.wall_time
                seq, i = seq + FPS, i + 1
                await asyncio.sleep(1.0)

        warmup = 5.0
        stop_at = time.monotonic() + warmup + seconds
        feeders = [asyncio.create_task(camera(i, n, stop_at)) for i, n in enumerate(names)]
        await asyncio.sleep(warmup)
        acked_before = (await js.consumer_info(settings.names.keyframes_stream, CONSUMER)).ack_floor.stream_seq
        meter = CpuMeter({"detector": [detector.pid], "nats-server": [nats.process.pid], "s3": [s3.process.pid]})
        meter.start()
        measure_from = time.time()
        await asyncio.gather(*feeders)
        used = meter.stop()
        info = await js.consumer_info(settings.names.keyframes_stream, CONSUMER)
        processed = info.ack_floor.stream_seq - acked_before
        backlog = info.num_pending + info.num_ack_pending
        await asyncio.sleep(3)  # detections of the last keyframes arrive
        await sub.unsubscribe()
        await nc.close()
        if not detector.alive():
            print(f"the detector died: {detector.log_tail()}")
    finally:
        if detector is not None:
            detector.stop()
        s3.stop()
        nats.stop()
        shutil.rmtree(work, ignore_errors=True)

    measured = sorted(lat for key, lat in first_seen.items() if sent_at.get(key, 0) >= measure_from)
    offered = sum(1 for t in sent_at.values() if t >= measure_from)
    return {
        "cameras": count,
        "keyframes_offered": offered,
        "keyframes_processed": processed,
        "backlog_at_end": backlog,
        "keyframes_per_s": round(processed / seconds, 2),
        "detector_cpu_s": round(used["detector"], 1),
        "keyframes_per_cpu_s": round(processed / used["detector"], 2) if used["detector"] else None,
        "nats_cpu_s": round(used["nats-server"], 1),
        "s3_cpu_s": round(used["s3"], 1),
        "keyframes_with_detections": len(measured),
        "latency_p50_ms": round(statistics.median(measured) * 1000) if measured else None,
        "latency_p95_ms": round(measured[int(0.95 * (len(measured) - 1))] * 1000) if measured else None,
    }


def _print_service(rows: list[dict]) -> None:
    headers = ["cams", "offered", "done", "backlog", "kf/s", "kf/cpu-s", "det cpu", "lat p50", "lat p95"]
    print("detector service, 1080p keyframes, 1 s GOP; latency: keyframe wall time -> first detection received")
    print("  ".join(f"{h:>9}" for h in headers))
    for r in rows:
        cells = [r["cameras"], r["keyframes_offered"], r["keyframes_processed"], r["backlog_at_end"],
                 r["keyframes_per_s"], r["keyframes_per_cpu_s"], r["detector_cpu_s"],
                 f"{r['latency_p50_ms']} ms", f"{r['latency_p95_ms']} ms"]
        print("  ".join(f"{c!s:>9}" for c in cells))


def markdown(result: dict) -> str:
    lines = [
        f"# Detection benchmark ({result['when']}, {result['cpus']} CPUs)",
        "",
        f"{result['clip']}.",
        "",
        "## Model only (ms per frame, network input 416x416)",
        "",
        "| backend | model | device | batch 1 | batch 4 (per frame) |",
        "|---|---|---|---|---|",
    ]
    for m in result["models"]:
        lines.append(f"| {m['backend']} | {m['model']} | {m['device']} | {m['ms_per_frame_batch1']} | "
                     f"{m['ms_per_frame_batch4']} |")
    lines += [
        "",
        "## Detector service (one process, OpenCV YOLOv4-tiny on CPU)",
        "",
        "Keyframes published as ingest would, cameras staggered within each second; latency from the keyframe's "
        "wall time to its first detection at a subscriber (decode, motion gate, model, snapshot JPEG to S3, "
        "publish). kf/cpu-s = keyframes per CPU-second of the detector process (per core).",
        "",
        "| cameras | offered | processed | backlog at end | keyframes/s | keyframes per CPU-s | detector CPU-s | "
        "latency p50 | latency p95 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["service"]:
        lines.append(f"| {r['cameras']} | {r['keyframes_offered']} | {r['keyframes_processed']} | "
                     f"{r['backlog_at_end']} | {r['keyframes_per_s']} | {r['keyframes_per_cpu_s']} | "
                     f"{r['detector_cpu_s']} | {r['latency_p50_ms']} ms | {r['latency_p95_ms']} ms |")
    return "\n".join(lines) + "\n"
