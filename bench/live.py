"""Live view benchmark: one simulated 1080p15 H.264 RTSP camera through ingest into the API's live WebSocket.

For each `[ingest] group_max_s` asked for (default 1.0 and 0.2), it measures:
- latency: a frame's capture (its Packet's wall time) to the arrival of its fragment at a WebSocket client on this
  machine (the hub's own latency plus loopback; a browser adds its MediaSource buffering), p50/p95/max, with 1
  viewer and with 8, and the time from opening the socket to the first fragment;
- the NATS cost of viewers: JetStream consumers on the camera's packets and the API connection's subscriptions
  (from nats-server's /connz) with 0, 1 and 8 viewers, and the API's CPU;
- memory: the API process's RSS while 8 viewers that never read stay connected for 30 s (the send timeout raised
  past it, so none is dropped), against its RSS before.
"""

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

from spectare.core.config import settings_env
from spectare.core.registry import CameraRegistry
from spectare.local.process import ManagedProcess, free_port
from spectare.local.servers import NatsServer
from spectare.local.stack import DEMO_SOURCE
from spectare.local.testcam import RtspTestCamera, make_test_clip
from spectare.schemas import CameraConfig
from tests.live_client import Received, watch

from .cpu import CpuMeter
from .servers import open_bench_bus

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CLIP = ROOT / "assets" / "bench" / "cam-1080p15.mp4"  # the recording benchmark's clip (made once, cached)
CAMERA = "cam"
STALL_S = 30.0


def add_arguments(parser) -> None:
    group = parser.add_argument_group("live")
    group.add_argument("--group-max-s", default="1.0,0.2", help="ingest group_max_s values (default 1.0,0.2)")
    group.add_argument("--live-seconds", type=float, default=30.0, help="seconds one viewer watches (default 30)")


def run(args) -> None:
    clip = make_test_clip(DEMO_SOURCE, CLIP, width=1920, height=1080, fps=15, gop_seconds=1, seconds=30,
                          bitrate_kbps=4000)
    rows = []
    for value in [float(v) for v in str(args.group_max_s).split(",") if v.strip()]:
        print(f"live benchmark: group_max_s {value:g}, {args.live_seconds:.0f} s ...", flush=True)
        rows.append(asyncio.run(_one(clip, value, args.live_seconds, stall=not rows)))
        print(json.dumps(rows[-1], indent=2), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "live", "clip": "1920x1080 15 fps H.264 ~4 Mbit/s, 1 s GOP", "cpus": os.cpu_count(),
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
    (RESULTS / "live.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "live.md").write_text(markdown(result))
    print(f"wrote {RESULTS / 'live.json'} and live.md")


def markdown(result: dict) -> str:
    lines = [
        f"# Live view benchmark ({result['when']}, {result['cpus']} CPUs)",
        "",
        f"{result['clip']}, one camera. Latency: a frame's capture (Packet wall time) -> its fragment received by a "
        "WebSocket client on the same machine (no browser buffering). Consumers: JetStream consumers on the camera's "
        "packets; subscriptions: the API connection's, beyond those it has with no viewer.",
        "",
        "| group_max_s | viewers | latency p50 | p95 | max | first fragment after open | consumers | "
        "subscriptions | API CPU s/min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        for n in ("1", "8"):
            v = r["viewers"][n]
            lines.append(f"| {r['group_max_s']:g} | {n} | {v['latency_p50_s']} s | {v['latency_p95_s']} s | "
                         f"{v['latency_max_s']} s | {v['first_fragment_s']} s | {v['consumers']} | "
                         f"{v['extra_subscriptions']} | {v['api_cpu_s_per_min']} |")
    stalled = next((r["stalled"] for r in result["rows"] if r.get("stalled")), None)
    if stalled:
        lines += ["", f"API RSS with 8 viewers that never read, for {stalled['seconds']:.0f} s: "
                      f"{stalled['rss_before_mb']} MB before, at most {stalled['rss_max_mb']} MB while they were "
                      f"connected ({stalled['rss_after_mb']} MB at the end); frames they were moved past: "
                      f"{stalled['skipped_frames']}."]
    return "\n".join(lines) + "\n"


def _percentile(values: list[float], share: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[int(share * (len(ordered) - 1))], 3) if ordered else None


def _subscriptions(monitor_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/connz?subs=1", timeout=5) as answer:
        connections = json.load(answer)["connections"]
    return sum(c.get("subscriptions", 0) for c in connections if c.get("name") == "spectare-api")


async def _consumers(js, settings) -> int:
    wanted = settings.names.packets(CAMERA)
    return sum(1 for c in await js.consumers_info(settings.names.media_stream)
               if wanted in (c.config.filter_subjects or []) or c.config.filter_subject == wanted)


def _metric(base_url: str, token: str, name: str) -> float:
    request = urllib.request.Request(f"{base_url}/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


async def _viewers(url: str, token: str, count: int, seconds: float, js, settings, monitor: int,
                   api_pid: int) -> tuple[dict, list[Received]]:
    opened = time.time()
    meter = CpuMeter({"api": [api_pid]})
    meter.start()
    tasks = [asyncio.create_task(watch(url, seconds, token)) for _ in range(count)]
    await asyncio.sleep(min(seconds / 2, 5))
    consumers, subscriptions = await _consumers(js, settings), _subscriptions(monitor)
    got = await asyncio.gather(*tasks)
    used = meter.stop()["api"]
    latencies = [lat for g in got for lat in g.latencies()]
    firsts = [g.fragments()[0][0] - opened for g in got if g.fragments()]
    return {"latency_p50_s": round(statistics.median(latencies), 3), "latency_p95_s": _percentile(latencies, 0.95),
            "latency_max_s": round(max(latencies), 3), "first_fragment_s": round(max(firsts), 3),
            "frames": len(latencies), "consumers": consumers, "subscriptions": subscriptions,
            "api_cpu_s_per_min": round(used / seconds * 60, 3)}, got


async def _stall(url: str, token: str, count: int, seconds: float, api_pid: int, base_url: str) -> dict:
    import socket

    import websockets

    process = psutil.Process(api_pid)
    before = process.memory_info().rss
    skipped_before = _metric(base_url, token, "spectare_api_live_skipped_frames_total")
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    stalled = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        stalled.append(await websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                                sock=sock, max_queue=1, max_size=None, open_timeout=10))
    peak = before
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, process.memory_info().rss)
        await asyncio.sleep(0.5)
    after = process.memory_info().rss
    skipped = _metric(base_url, token, "spectare_api_live_skipped_frames_total") - skipped_before
    for ws in stalled:
        ws.transport.abort()
    return {"seconds": seconds, "viewers": count, "rss_before_mb": round(before / 2**20, 1),
            "rss_max_mb": round(peak / 2**20, 1), "rss_after_mb": round(after / 2**20, 1),
            "skipped_frames": int(skipped)}


async def _one(clip: Path, group_max_s: float, seconds: float, stall: bool) -> dict:
    work = Path(tempfile.mkdtemp(prefix="spectare-bench-live-"))
    monitor = free_port()
    nats = NatsServer(work / "nats", work / "nats.log", monitor_port=monitor)
    camera = RtspTestCamera({CAMERA: clip}, work / "testcam.log")
    processes: list[ManagedProcess] = []
    try:
        nats.start()
        camera.start()
        settings, nc, js = await open_bench_bus(nats, None, work)
        registry = await CameraRegistry.open(js, settings)
        await registry.add(CameraConfig(name=CAMERA, url=camera.url(CAMERA), detect=False))
        port = free_port()
        env = {**settings_env(settings), "SPECTARE_LOG_LEVEL": "WARNING",
               "SPECTARE_INGEST__GROUP_MAX_S": str(group_max_s),
               # the same length watched or not: this benchmark measures fixed group lengths
               "SPECTARE_INGEST__LIVE_GROUP_MAX_S": str(group_max_s), "SPECTARE_API__PORT": str(port),
               "SPECTARE_API__LIVE_SEND_TIMEOUT_S": str(STALL_S + 30), "SPECTARE_API__LIVE_LINGER_S": "1"}
        for service in ("ingest", "api"):
            process = ManagedProcess(service, [sys.executable, "-m", f"spectare.{service}"], work / f"{service}.log",
                                     env=env)
            process.start()
            processes.append(process)
        token = await _token(settings, work)
        await _until_keyframe(js, settings)
        await asyncio.sleep(3)  # ingest settled
        api_pid = processes[1].pid
        assert api_pid is not None
        base_url = f"http://127.0.0.1:{port}"
        url = f"ws://127.0.0.1:{port}/cameras/byname/{CAMERA}/live"
        idle_subscriptions = _subscriptions(monitor)
        row: dict = {"group_max_s": group_max_s, "viewers": {}}
        for count, length in ((1, seconds), (8, min(seconds, 15.0))):
            stats, _ = await _viewers(url, token, count, length, js, settings, monitor, api_pid)
            stats["extra_subscriptions"] = stats["subscriptions"] - idle_subscriptions
            row["viewers"][str(count)] = stats
            await asyncio.sleep(3)  # linger, then the feed stops
        row["consumers_after_last_left"] = await _consumers(js, settings)
        if stall:
            row["stalled"] = await _stall(url, token, 8, STALL_S, api_pid, base_url)
        await nc.close()
        return row
    finally:
        for process in processes:
            process.stop()
        camera.stop()
        nats.stop()
        shutil.rmtree(work, ignore_errors=True)


async def _token(settings, work: Path) -> str:
    done = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "spectare", "token", "create", "--scope", "read", "--name", "bench",
        env={**os.environ, **settings_env(settings)}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await done.communicate()
    if done.returncode:
        raise RuntimeError(f"token create failed: {err.decode()}")
    return out.decode().strip()


async def _until_keyframe(js, settings, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await js.get_last_msg(settings.names.keyframes_stream, settings.names.keyframes(CAMERA))
            return
        except Exception:
            await asyncio.sleep(0.5)
    raise RuntimeError("the camera published no keyframe")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__)
    add_arguments(parser)
    run(parser.parse_args())
