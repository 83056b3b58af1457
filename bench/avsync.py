"""A/V sync benchmark: how far the sound is from the picture in recorded chunks, at the start of a recording and
after `--avsync-seconds` of it (default 600), for AAC copied and for G.711 transcoded to AAC.

The RTSP test camera sends a clip that flashes white for one frame every 3 s (`make_test_clip(sync_marks=...)`)
and, on the same clock, a 0.1 s beep at each flash (`RtspTestCamera(sync_marks=...)`). Both cameras are recorded at
once by one ingest and one segmenter, with real NATS and S3; then every chunk is read back: each flash is found
by the brightness of the decoded frames, each beep by the onset of its energy in the decoded AAC (one decoder across
the chunks, as a player decodes them), both placed on the wall clock by the chunk's start. The offset of a mark is
beep - flash (positive: the sound is late); the drift is the last mark's offset minus the first's. Goal: under one
frame (67 ms at 15 fps).

What it measures is ingest and the segmenter (both tracks' timestamps, the chunks' layout), plus the camera's own
offset at the start (its AAC encoder's delay, for instance): a recording that drifts shows a drift, one placed off
shows a start offset. A mark in a chunk's first audio frame is read where the chunk holds it (the mp4 muxer moves
that frame to 0: undone, as the clip export does).

Results: bench/results/avsync.json and avsync.md.
"""

import asyncio
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from spectare.core.config import Settings, settings_env
from spectare.core.footage import read_footage
from spectare.core.registry import CameraRegistry
from spectare.core.store import s3_client
from spectare.local.process import ManagedProcess
from spectare.local.servers import NatsServer, S3Credentials, SeaweedS3
from spectare.local.stack import DEMO_SOURCE
from spectare.local.testcam import RtspTestCamera, make_test_clip
from spectare.media.clips import ChunkFile
from spectare.schemas import CameraConfig, Segment

from .servers import open_bench_bus

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CLIP = ROOT / "assets" / "bench" / "avsync-360p15.mp4"
FPS = 15
MARK_EVERY_S, FIRST_MARK_S = 3.0, 0.4  # flash + beep every 3 s, the first 0.4 s in: never on a keyframe
AUDIO_KINDS = ("aac", "pcmu")  # AAC copied; G.711 transcoded to AAC by ingest
FLASH_LUMA = 200  # mean luma of a white frame is ~235; the footage's brightest frames stay under 150
BEEP_LEVEL = 0.25  # the beep's amplitude is 0.8; between beeps the camera sends silence
QUIET_S = 0.5  # a beep starts after at least this much silence
# Marks this soon after the session's first frame are left out: the camera's audio starts with the first beep, and
# that beep comes one audio packet later than every later one (21.3 ms in AAC, 20 ms in G.711; FFmpeg recording the
# camera hears the same), so it would count the test camera's start as a drift.
SETTLE_S = 1.0


def add_arguments(parser) -> None:
    group = parser.add_argument_group("avsync")
    group.add_argument("--avsync-seconds", type=float, default=600.0,
                       help="seconds of recording to measure the drift over (default 600)")
    group.add_argument("--avsync-audio", default=",".join(AUDIO_KINDS),
                       help=f"comma-separated audio kinds, recorded side by side (default {','.join(AUDIO_KINDS)})")


def sync_clip(out: Path = CLIP) -> Path:
    """The flashing clip: 640x360, 15 fps, 1 s GOP, 12 s (four marks) looped by the camera."""
    return make_test_clip(DEMO_SOURCE, out, width=640, height=360, fps=FPS, gop_seconds=1, seconds=12,
                          sync_marks=(MARK_EVERY_S, FIRST_MARK_S))


def sync_camera(kind: str, clip: Path, log_file: Path) -> RtspTestCamera:
    """A test camera serving `clip` at /sync with its beeps, in AAC or G.711 (`kind`): not started."""
    return RtspTestCamera({"sync": clip}, log_file, audio=kind, sync_marks=(MARK_EVERY_S, FIRST_MARK_S))


def run(args) -> None:
    kinds = [k.strip() for k in str(args.avsync_audio).split(",") if k.strip()]
    unknown = sorted(set(kinds) - {"aac", "pcmu", "pcma"})
    if unknown:
        raise SystemExit(f"avsync benchmark: unknown audio kind(s) {', '.join(unknown)} (known: aac, pcmu, pcma)")
    seconds = float(args.avsync_seconds)
    print(f"avsync benchmark: {', '.join(kinds)} side by side, {seconds:.0f} s of recording ...", flush=True)
    rows = asyncio.run(_bench(kinds, seconds, sync_clip()))
    print_table(rows)
    result = {"benchmark": "avsync", "clip": "640x360 15 fps H.264, 1 s GOP, no B-frames; a flash and a beep every "
              f"{MARK_EVERY_S:g} s", "recorded_seconds": seconds, "segment_seconds": CameraConfig.model_fields[
                  "segment_seconds"].default, "cpus": os.cpu_count(),
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "avsync.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "avsync.md").write_text(markdown(result))
    print(f"wrote {RESULTS / 'avsync.json'} and avsync.md")


async def _bench(kinds: list[str], seconds: float, clip: Path) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="spectare-bench-avsync-"))
    nats = NatsServer(work / "nats", work / "nats.log")
    s3 = SeaweedS3(work / "s3", work / "s3.log", S3Credentials.generate())
    cameras = {f"sync-{kind}": sync_camera(kind, clip, work / f"testcam-{kind}.log") for kind in kinds}
    processes: list[ManagedProcess] = []
    try:
        nats.start()
        s3.start()
        for camera in cameras.values():
            camera.start()
        settings, nc, js = await open_bench_bus(nats, s3, work)
        env = {**settings_env(settings), "SPECTARE_LOG_LEVEL": "WARNING"}
        for service in ("ingest", "segmenter"):
            process = ManagedProcess(service, [sys.executable, "-m", f"spectare.{service}"], work / f"{service}.log",
                                     env=env)
            process.start()
            processes.append(process)
        chunks = await record(js, settings, {name: cam.url("sync") for name, cam in cameras.items()}, seconds,
                              work / "chunks")
        await nc.close()
        return [dict(audio=kind, **offsets(chunks[f"sync-{kind}"]).summary()) for kind in kinds]
    finally:
        for process in processes:
            process.stop()
        for camera in cameras.values():
            camera.stop()
        s3.stop()
        nats.stop()
        shutil.rmtree(work, ignore_errors=True)


async def record(js, settings: Settings, urls: dict[str, str], seconds: float, folder: Path,
                 timeout_s: float = 120) -> dict[str, list[ChunkFile]]:
    """Register the cameras (ingest and the segmenter running), wait until each has chunks covering `seconds` from
    its first one, and download them all (only the first session's)."""
    registry = await CameraRegistry.open(js, settings)
    for name, url in urls.items():
        await registry.add(CameraConfig(name=name, url=url, detect=False))
    folder.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + seconds + timeout_s
    out: dict[str, list[ChunkFile]] = {}
    for name in urls:
        while True:
            segments = _first_session([i for i in await read_footage(js, settings, name) if isinstance(i, Segment)])
            if segments and segments[-1].end - segments[0].start >= seconds:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"camera {name}: {seconds:.0f} s of chunks not recorded in time")
            await asyncio.sleep(1.0)
        client = s3_client(settings.s3)
        files = []
        for i, segment in enumerate(segments):
            path = folder / f"{name}-{i:04d}.mp4"
            path.write_bytes(client.get_object(settings.s3.bucket, segment.key).read())
            files.append(ChunkFile(path, segment.start, segment.end))
        out[name] = files
    return out


def _first_session(segments: list[Segment]) -> list[Segment]:
    ordered = sorted(segments, key=lambda s: s.start)
    return [s for s in ordered if s.session == ordered[0].session] if ordered else []


# -- finding the marks in the chunks ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Offsets:
    """Each mark's time (its flash) and the offset of its beep from it, in seconds; marks found on one side only."""

    marks: list[tuple[float, float]]
    unpaired: int

    def summary(self) -> dict:
        if not self.marks:
            return {"marks": 0, "unpaired": self.unpaired}
        times = np.array([t for t, _ in self.marks])
        values = np.array([o for _, o in self.marks]) * 1000
        slope = float(np.polyfit(times - times[0], values, 1)[0]) if len(values) > 1 else 0.0
        drift = float(values[-1] - values[0])
        return {"marks": len(self.marks), "unpaired": self.unpaired, "span_s": round(float(times[-1] - times[0]), 1),
                "start_ms": round(float(values[0]), 1), "end_ms": round(float(values[-1]), 1),
                "drift_ms": round(drift, 1), "drift_frames": round(drift * FPS / 1000, 2),
                "min_ms": round(float(values.min()), 1), "max_ms": round(float(values.max()), 1),
                "trend_ms_per_10_min": round(slope * 600, 1)}


def offsets(chunks: list[ChunkFile]) -> Offsets:
    """Each flash paired with the beep nearest it (within half the marks' period), from `SETTLE_S` on."""
    settled = min(c.start for c in chunks) + SETTLE_S
    flashes = [t for t in find_flashes(chunks) if t >= settled]
    beeps = [t for t in find_beeps(chunks) if t >= settled]
    marks, used = [], set()
    for flash in flashes:
        near = min(range(len(beeps)), key=lambda i: abs(beeps[i] - flash), default=None)
        if near is not None and abs(beeps[near] - flash) < MARK_EVERY_S / 2 and near not in used:
            used.add(near)
            marks.append((flash, beeps[near] - flash))
    return Offsets(marks, len(flashes) + len(beeps) - 2 * len(marks))


def find_flashes(chunks: Iterable[ChunkFile]) -> list[float]:
    """Wall times of the white frames (the first of a run), each chunk's frames timed from its start."""
    out: list[float] = []
    last_white = False
    for chunk in sorted(chunks, key=lambda c: c.start):
        with av.open(str(chunk.path)) as container:
            stream = container.streams.video[0]
            frames = [(f.time, np.frombuffer(memoryview(f.planes[0]), np.uint8).mean())
                      for f in container.decode(stream) if f.time is not None]
        first = min(t for t, _ in frames)
        for t, luma in sorted(frames):
            white = luma > FLASH_LUMA
            if white and not last_white:
                out.append(chunk.start + t - first)
            last_white = white
    return out


def find_beeps(chunks: Iterable[ChunkFile]) -> list[float]:
    """Wall times of the beeps' onsets: the first sample over `BEEP_LEVEL` after `QUIET_S` of silence. The AAC is
    decoded as one stream (a frame's decoding overlaps the one before), each packet placed on the wall clock as
    the chunk holds it: its start plus the packet's time on the chunk's picture timeline."""
    out: list[float] = []
    decoder = None
    loud_at = -math.inf
    for chunk in sorted(chunks, key=lambda c: c.start):
        with av.open(str(chunk.path)) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            rate = audio.codec_context.sample_rate
            frame = (audio.codec_context.frame_size or 1024) / rate
            if decoder is None:
                decoder = av.CodecContext.create("aac", "r")
                decoder.extradata = audio.codec_context.extradata
            packets = [(p.stream.type, float(p.pts * p.time_base), float((p.duration or 0) * p.time_base), bytes(p))
                       for p in container.demux(video, audio) if p.size and p.pts is not None and p.time_base]
        origin = chunk.start - min(t for kind, t, _, _ in packets if kind == "video")  # the chunk's time 0
        sound = [(t, d, data) for kind, t, d, data in packets if kind == "audio"]
        for i, (start, duration, data) in enumerate(sound):
            if i == 0 and duration > frame * 1.01:  # moved to 0 and lengthened by the muxer: where it was
                start += duration - frame
            for decoded in decoder.decode(av.Packet(data)):
                times = origin + start + np.flatnonzero(np.abs(decoded.to_ndarray()[0]) > BEEP_LEVEL) / rate
                if len(times):
                    before = np.concatenate(([loud_at], times[:-1]))
                    out += [float(t) for t in times[times - before > QUIET_S]]
                    loud_at = float(times[-1])
    return out


# -- output -------------------------------------------------------------------------------------------------------

COLUMNS = [("audio", "audio"), ("marks", "marks"), ("span_s", "span s"), ("start_ms", "start ms"),
           ("end_ms", "end ms"), ("drift_ms", "drift ms"), ("drift_frames", "drift frames"),
           ("min_ms", "min ms"), ("max_ms", "max ms"), ("trend_ms_per_10_min", "trend ms/10 min")]


def print_table(rows: list[dict]) -> None:
    print("  ".join(f"{title:>15}" for _, title in COLUMNS))
    for row in rows:
        print("  ".join(f"{row.get(key, ''):>15}" for key, _ in COLUMNS))


def markdown(result: dict) -> str:
    lines = [
        f"# A/V sync benchmark ({result['when']}, {result['cpus']} CPUs)",
        "",
        f"{result['clip']}; {result['recorded_seconds']:.0f} s recorded in {result['segment_seconds']} s chunks, "
        "both cameras at once (one ingest, one segmenter). Offset = beep - flash as the chunks hold them (positive: "
        "the sound is late); start/end: the first and last mark; drift = end - start (1 frame = 66.7 ms); trend: "
        "the least-squares slope over every mark. Marks from 1 s into the recording (the camera's first beep comes "
        "one audio packet late, through FFmpeg too). `aac`: AAC copied; `pcmu`: G.711 transcoded to AAC by ingest.",
        "",
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in result["rows"]:
        lines.append("| " + " | ".join(str(row.get(key, "")) for key, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"
