"""Recording benchmark: N simulated 1080p15 H.264 RTSP cameras through ingest + segmenter, against
`ffmpeg -rtsp_transport tcp -i URL -c copy -f segment -segment_time 10` recording the same streams
in the same run.

Reports CPU seconds per camera-minute for our services, for nats-server and the S3 server
separately, and for ffmpeg; the ratio ours / ffmpeg; and chunk availability latency: from the
receipt of a chunk's last frame to its Segment event (published after the object is in S3).

With `--audio none,aac,pcmu` each camera count runs once per audio kind (the test camera's tone), the kinds side
by side (one stack each, phases measured over the same seconds, so the shared machine's load weighs on all alike):
AAC is copied, G.711 transcoded to AAC by ingest; ffmpeg copies both tracks (`-c copy`; G.711
cannot go into MP4, so there it is `-c:a aac` too). Within an audio kind's stack the measuring windows alternate
between recording the audio and not (`audio = off`): `audio_adds_pct` is the median over those pairs. (Two stacks
alike, side by side, differ by up to a quarter here: which stack the scheduler favours outweighs the audio.) Those
results go to recording-audio.json / .md, not over the video-only ones.
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

from spectare.core.config import settings_env
from spectare.core.registry import CameraRegistry
from spectare.local.process import ManagedProcess
from spectare.local.servers import NatsServer, S3Credentials, SeaweedS3
from spectare.local.stack import DEMO_SOURCE
from spectare.local.testcam import RtspTestCamera, make_test_clip
from spectare.schemas import CameraConfig, Gap, Segment, decode_one_of

from . import failover
from .cpu import CpuMeter
from .servers import open_bench_bus

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CLIP = ROOT / "assets" / "bench" / "cam-1080p15.mp4"
FAILOVER_CLIP = ROOT / "assets" / "bench" / "cam-360p15.mp4"
FPS = 15
AUDIO_KINDS = ("aac", "aac16k", "pcmu", "pcma")  # what the RTSP test camera sends (`RtspTestCamera(audio=...)`)
SEGMENT_SECONDS = 10
WINDOWS = 8  # measuring windows per phase: with audio, 4 pairs of (audio recorded, audio off)
SWITCH_SETTLE_S = 5.0  # before each window: the cameras' new sessions (audio setting switched) settle


def add_arguments(parser) -> None:
    group = parser.add_argument_group("recording")
    group.add_argument("--cameras", default="1,8,32", help="comma-separated camera counts (default 1,8,32)")
    group.add_argument("--seconds", type=float, default=60.0, help="measured seconds per phase (default 60)")
    group.add_argument("--audio", default="none",
                       help="comma-separated audio kinds per camera count: none, aac (48 kHz), aac16k, pcmu, pcma "
                            "(default none)")
    group.add_argument("--failover-rounds", type=int, default=3,
                       help="ingest kill -9 / node-lost rounds measured after the CPU runs (default 3; 0: none)")


def run(args) -> None:
    counts = [int(c) for c in str(args.cameras).split(",") if c.strip()]
    kinds = [a.strip() for a in str(args.audio).split(",") if a.strip()]
    unknown = sorted(set(kinds) - {"none", *AUDIO_KINDS})
    if unknown:
        raise SystemExit(f"recording benchmark: unknown audio kind(s) {', '.join(unknown)} "
                         f"(known: none, {', '.join(AUDIO_KINDS)})")
    clip = make_test_clip(DEMO_SOURCE, CLIP, width=1920, height=1080, fps=FPS, gop_seconds=1, seconds=30,
                          bitrate_kbps=4000)
    rows = []
    for count in counts:
        print(f"recording benchmark: {count} camera(s), audio {', '.join(kinds)} side by side, "
              f"{args.seconds:.0f} s per phase ...", flush=True)
        rows += asyncio.run(_side_by_side(count, args.seconds, clip, kinds))
        _print_table(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "recording", "clip": "1920x1080 15 fps H.264 ~4 Mbit/s, 1 s GOP",
              "segment_seconds": SEGMENT_SECONDS, "measured_seconds": args.seconds,
              "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
    if args.failover_rounds > 0:
        print(f"recording benchmark: ingest failover, {args.failover_rounds} round(s) each ...", flush=True)
        small = make_test_clip(DEMO_SOURCE, FAILOVER_CLIP, width=640, height=360, fps=FPS, gop_seconds=1, seconds=30)
        result["failover"] = failover.measure(args.failover_rounds, small)
        print(_failover_lines(result["failover"]))
    name = "recording" if kinds == ["none"] else "recording-audio"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{name}.md").write_text(markdown(result))
    print(f"wrote {RESULTS / name}.json and {name}.md")


def markdown(result: dict) -> str:
    """The results table kept in the repository."""
    lines = [
        f"# Recording benchmark ({result['when']}, {result['cpus']} CPUs)",
        "",
        f"{result['clip']}; {result['segment_seconds']} s chunks; {result['measured_seconds']:.0f} s measured per "
        "phase. CPU seconds per camera-minute; 'ours' = ingest + segmenter; ratio = ours / ffmpeg "
        "(`-rtsp_transport tcp -c copy -f segment -segment_time 10`, same streams, same run). Latency: last frame "
        "of a chunk received -> its Segment event (object already in S3). With several audio kinds, each runs in "
        "its own stack side by side with the others, in windows that alternate between recording the cameras' "
        "audio and not (camera setting `audio = off`, the camera then sends no audio): 'audio adds' is the median "
        f"over the phase's {WINDOWS // 2} pairs of windows of ours with audio against ours without, in the same "
        "stack; the CPU columns are the windows with audio.",
        "",
        "| cameras | audio | ours | audio adds | ingest | segmenter | nats-server | S3 (SeaweedFS) | ffmpeg | ratio | "
        "chunks | latency p50 | latency p95 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        adds = f"{r['audio_adds_pct']:+} %" if r.get("audio_adds_pct") is not None else ""
        lines.append(
            f"| {r['cameras']} | {r.get('audio', 'none')} | {r['ours_cpu_s_per_cam_min']} | {adds} | "
            f"{r['ingest_cpu_s_per_cam_min']} | "
            f"{r['segmenter_cpu_s_per_cam_min']} | {r['nats_cpu_s_per_cam_min']} | {r['s3_cpu_s_per_cam_min']} | "
            f"{r['ffmpeg_cpu_s_per_cam_min']} | {r['ratio_ours_to_ffmpeg']} | {r['chunks']}/{r['chunks_expected']} | "
            f"{r['latency_p50_s']} s | {r['latency_p95_s']} s |"
        )
    if "failover" in result:
        lines += ["", _failover_lines(result["failover"])]
    return "\n".join(lines) + "\n"


def _failover_lines(f: dict) -> str:
    kill, lost = f["kill9_gap_s"], f["node_lost_gap_s"]
    return (f"Ingest failover ({f['rounds']} rounds each; the gap the segmenter announced, seconds): kill -9 under "
            f"the supervisor median {kill['median']} max {kill['max']} (goal <= 2; each {kill['each']}); node lost "
            f"for good median {lost['median']} max {lost['max']} (goal <= lease TTL {f['lease_ttl_s']:g} + 2; each "
            f"{lost['each']}).")


async def _side_by_side(count: int, seconds: float, clip: Path, kinds: list[str]) -> list[dict]:
    """One stack per audio kind, all at once, each phase measured over the same seconds: the machine's other load
    then weighs on every kind alike, so the CPU audio adds is measured, not the load that came and went."""
    barrier = asyncio.Barrier(len(kinds))
    return list(await asyncio.gather(*(_one(count, seconds, clip, None if kind == "none" else kind, barrier)
                                       for kind in kinds)))


async def _one(count: int, seconds: float, clip: Path, audio: str | None, barrier: asyncio.Barrier) -> dict:
    work = Path(tempfile.mkdtemp(prefix="spectare-bench-"))
    names = [f"bench{i:02d}" for i in range(count)]
    nats = NatsServer(work / "nats", work / "nats.log")
    s3 = SeaweedS3(work / "s3", work / "s3.log", S3Credentials.generate())
    camera = RtspTestCamera({n: clip for n in names}, work / "testcam.log", audio=audio)
    processes: list[ManagedProcess] = []
    try:
        for server in (nats, s3, camera):  # in a thread: the other kinds' stacks start beside this one
            await asyncio.to_thread(server.start)
        settings, nc, js = await open_bench_bus(nats, s3, work)
        registry = await CameraRegistry.open(js, settings)
        for name in names:
            await registry.add(CameraConfig(name=name, url=camera.url(name), detect=False,
                                            segment_seconds=SEGMENT_SECONDS))

        # Phase 1: Spectare.
        latencies: list[float] = []
        segments: list[Segment] = []

        async def on_footage(msg):
            item = decode_one_of(msg.data, Segment, Gap)
            if isinstance(item, Segment):
                segments.append(item)
                latencies.append(time.time() - (item.end - 1 / FPS))

        env = {**settings_env(settings), "SPECTARE_LOG_LEVEL": "WARNING",
               "SPECTARE_INGEST__MAX_CAMERAS": str(count), "SPECTARE_SEGMENTER__MAX_CAMERAS": str(count)}
        for service in ("ingest", "segmenter"):
            process = ManagedProcess(service, [sys.executable, "-m", f"spectare.{service}"],
                                     work / f"{service}.log", env=env)
            process.start()
            processes.append(process)
        warmup_deadline = time.monotonic() + 30
        while time.monotonic() < warmup_deadline:
            info = await js.stream_info(settings.names.media_stream, subjects_filter=settings.names.packets("*"))
            if len(info.state.subjects or {}) >= count:  # every camera is publishing packets
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(SEGMENT_SECONDS + 2)  # let the first (partial) chunks pass
        await barrier.wait()
        sub = await nc.subscribe(settings.names.footage("*"), cb=on_footage)
        # The phase in windows, each begun by all kinds together. With audio, the windows alternate between
        # recording the cameras' audio (`audio = copy`, even windows) and not (`off`, odd ones) in this same stack:
        # `audio_adds_pct` is the median over those pairs, so the processes, the camera server and the machine's
        # load are the same on both sides of each comparison (stacks side by side differ by more than audio costs).
        used: dict[str, float] = {}
        off: dict[str, float] = {}
        windows: list[tuple[bool, float]] = []  # (recording audio, ours per camera-minute)
        for n in range(WINDOWS):
            if windows:
                await barrier.wait()
            recording = audio is not None and n % 2 == 0
            if audio is not None and n:  # each camera starts a new session with the setting: not measured
                for name in names:
                    await registry.put(CameraConfig(name=name, url=camera.url(name), detect=False,
                                                    segment_seconds=SEGMENT_SECONDS,
                                                    audio="copy" if recording else "off"))
            await asyncio.sleep(SWITCH_SETTLE_S)
            window = CpuMeter({
                "ingest": [processes[0].pid], "segmenter": [processes[1].pid],
                "nats-server": [nats.process.pid], "s3": [s3.process.pid], "camera": [camera.process.pid],
            })
            window.start()
            await asyncio.sleep(seconds / WINDOWS)
            spent = window.stop()
            for key, value in spent.items():
                side = used if recording or audio is None else off
                side[key] = side.get(key, 0.0) + value
            windows.append((recording, (spent["ingest"] + spent["segmenter"]) / (count * seconds / WINDOWS / 60)))
        await sub.unsubscribe()
        for process in processes:
            await asyncio.to_thread(process.stop)
        processes.clear()

        # Phase 2: ffmpeg on the same streams.
        ffmpegs = []
        for name in names:
            out = work / "ffmpeg" / name
            out.mkdir(parents=True)
            process = ManagedProcess(f"ffmpeg-{name}", [
                shutil.which("ffmpeg") or "/usr/bin/ffmpeg", "-nostdin", "-loglevel", "error",
                "-rtsp_transport", "tcp", "-i", camera.url(name), "-c", "copy",
                *(["-c:a", "aac"] if audio in ("pcmu", "pcma") else []), "-f", "segment",
                "-segment_time", str(SEGMENT_SECONDS), "-reset_timestamps", "1", str(out / "%05d.mp4"),
            ], work / "ffmpeg.log")
            process.start()
            ffmpegs.append(process)
        await asyncio.sleep(5)
        await barrier.wait()
        theirs = CpuMeter({"ffmpeg": [p.pid for p in ffmpegs], "camera": [camera.process.pid]})
        theirs.start()
        await asyncio.sleep(seconds)
        ffmpeg_used = theirs.stop()
        for process in ffmpegs:
            await asyncio.to_thread(process.stop)
        await nc.close()
    finally:
        for process in processes:
            await asyncio.to_thread(process.stop)
        camera.stop()
        s3.stop()
        nats.stop()
        shutil.rmtree(work, ignore_errors=True)

    measured = sum(1 for recording, _ in windows if recording or audio is None)
    camera_minutes = count * seconds / WINDOWS * measured / 60
    per = {k: v / camera_minutes for k, v in used.items()}
    ffmpeg_per = ffmpeg_used["ffmpeg"] / (count * seconds / 60)
    ordered = sorted(latencies)
    pairs = [(windows[i][1], windows[i + 1][1]) for i in range(0, len(windows) - 1, 2)] if audio is not None else []
    off_minutes = count * seconds / WINDOWS * (len(windows) - measured) / 60
    return {
        "cameras": count,
        "audio": audio or "none",
        "ingest_cpu_s_per_cam_min": round(per["ingest"], 4),
        "segmenter_cpu_s_per_cam_min": round(per["segmenter"], 4),
        "ours_cpu_s_per_cam_min": round(per["ingest"] + per["segmenter"], 4),
        "ours_cpu_s_per_cam_min_windows": [round(w, 4) for _, w in windows],
        "ours_audio_off_cpu_s_per_cam_min": (round((off["ingest"] + off["segmenter"]) / off_minutes, 4)
                                             if off else None),
        "audio_adds_pct": (round(statistics.median(100 * (on - without) / without for on, without in pairs), 1)
                           if pairs else None),
        "audio_adds_pct_pairs": [round(100 * (on - without) / without, 1) for on, without in pairs],
        "nats_cpu_s_per_cam_min": round(per["nats-server"], 4),
        "s3_cpu_s_per_cam_min": round(per["s3"], 4),
        "ffmpeg_cpu_s_per_cam_min": round(ffmpeg_per, 4),
        "ratio_ours_to_ffmpeg": round((per["ingest"] + per["segmenter"]) / ffmpeg_per, 2) if ffmpeg_per else None,
        "chunks": len(segments),
        # over the whole phase, settling included; with audio, every switch starts new sessions (a shorter chunk)
        "chunks_expected": int(count * (seconds + WINDOWS * SWITCH_SETTLE_S) / SEGMENT_SECONDS),
        "latency_p50_s": round(statistics.median(ordered), 3) if ordered else None,
        "latency_p95_s": round(ordered[int(0.95 * (len(ordered) - 1))], 3) if ordered else None,
        "camera_server_cpu_s_per_cam_min": round(per["camera"], 4),
    }


def _print_table(rows: list[dict]) -> None:
    headers = ["cams", "audio", "ours", "adds %", "ingest", "segm.", "nats", "s3", "ffmpeg", "ratio", "chunks",
               "lat p50", "lat p95"]
    print("CPU seconds per camera-minute (1080p15); latency: last frame received -> Segment event")
    print("  ".join(f"{h:>8}" for h in headers))
    for r in rows:
        cells = [r["cameras"], r["audio"], r["ours_cpu_s_per_cam_min"], r["audio_adds_pct"],
                 r["ingest_cpu_s_per_cam_min"],
                 r["segmenter_cpu_s_per_cam_min"], r["nats_cpu_s_per_cam_min"], r["s3_cpu_s_per_cam_min"],
                 r["ffmpeg_cpu_s_per_cam_min"], r["ratio_ours_to_ffmpeg"], f"{r['chunks']}/{r['chunks_expected']}",
                 r["latency_p50_s"], r["latency_p95_s"]]
        print("  ".join(f"{c!s:>8}" for c in cells))
