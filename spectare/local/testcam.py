"""RTSP test cameras: H.264 clips served over real RTSP on 127.0.0.1, looping forever in real time.

`RtspTestCamera` runs `testcam_server.py` (GStreamer's RTSP server) under the system Python, which has
PyGObject; `make_test_clip` builds the clips it serves from a real source video with ffmpeg (H.264, no
B-frames unless asked for, fixed closed GOP), and `probe_clip` says what a clip holds. Tests, `spectare up --demo` and
the benchmarks all build their cameras this way.
"""

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from spectare.core.errors import StackError
from spectare.local.process import ManagedProcess, check_port_free

GI_PYTHON = os.environ.get("SPECTARE_GI_PYTHON", "/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("testcam_server.py")
_FFMPEG_CANDIDATES = ("/usr/bin/ffmpeg",)


class RtspTestCamera:
    """One RTSP server process serving each clip of `mounts` at rtsp://127.0.0.1:PORT/<name>.

    Every client gets the clip from its first frame, in real time, looping seamlessly forever; RTP
    over TCP (interleaved) or UDP. `port=None` lets the server pick a free port (see `.port`).
    """

    def __init__(self, mounts: dict[str, Path], log_file: Path, port: int | None = None,
                 auth: tuple[str, str] | None = None, audio: str | None = None,
                 sync_marks: tuple[float, float] | None = None) -> None:
        if not mounts:
            raise StackError("RTSP test camera: no clips to serve")
        self.mounts = {name: Path(path) for name, path in mounts.items()}
        self.log_file = Path(log_file)
        self._port = port
        self.auth = auth  # (user, password) the camera demands, like a real one
        self.audio = audio  # "aac", "pcmu" or "pcma": every mount also sends an audio track (a tone)
        # (every, first) seconds: the audio is a beep at those instants instead, for clips that flash at them
        # (`make_test_clip(sync_marks=...)`)
        self.sync_marks = sync_marks
        self.process: ManagedProcess | None = None
        self._ready_dir: str | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise StackError("RTSP test camera not started: its port is not known yet")
        return self._port

    def url(self, name: str) -> str:
        if name not in self.mounts:
            raise KeyError(f"RTSP test camera has no mount {name!r} (has {', '.join(self.mounts)})")
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    def start(self, timeout: float = 20.0) -> "RtspTestCamera":
        for name, path in self.mounts.items():
            if not path.is_file():
                raise StackError(f"RTSP test camera {name!r}: clip {path} not found")
        if self._port:
            check_port_free(self._port, "the RTSP test camera")
        self._ready_dir = tempfile.mkdtemp(prefix="spectare-testcam-")
        ready_file = Path(self._ready_dir) / "ready.json"
        argv = [GI_PYTHON, "-I", str(SERVER_SCRIPT), "--port", str(self._port or 0),
                "--ready-file", str(ready_file)]
        for name, path in self.mounts.items():
            argv += ["--mount", f"{name}={path.resolve()}"]
        if self.audio:
            argv += ["--audio", self.audio]
        if self.sync_marks:
            argv += ["--sync-marks", ",".join(repr(float(x)) for x in self.sync_marks)]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log_start = self.log_file.stat().st_size if self.log_file.exists() else 0
        env = {"TESTCAM_AUTH": ":".join(self.auth)} if self.auth else None
        self.process = ManagedProcess("RTSP test camera", argv, self.log_file, env=env)
        try:
            self.process.start()
        except StackError:
            self._cleanup_ready()
            raise

        deadline = time.monotonic() + timeout
        while True:
            if ready_file.exists():
                try:
                    info = json.loads(ready_file.read_text())
                    self._port = int(info["port"])
                    return self
                except (json.JSONDecodeError, KeyError, ValueError):
                    pass
            if not self.process.alive():
                code = self.process.returncode()
                self._cleanup_ready()
                raise StackError(f"RTSP test camera exited with code {code}: "
                                 f"{self._failure_line(log_start)} (log: {self.log_file})")
            if time.monotonic() > deadline:
                self.process.stop()
                self._cleanup_ready()
                raise StackError(f"RTSP test camera not ready after {timeout:.0f}s (log: {self.log_file})")
            time.sleep(0.05)

    def _failure_line(self, offset: int) -> str:
        """The server's own `error:` line from this run, else the last line it wrote."""
        try:
            with open(self.log_file, "rb") as f:
                f.seek(offset)
                lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no output"
        for line in reversed(lines):
            if "error:" in line:
                return line.split("error:", 1)[1].strip()
        return lines[-1] if lines else "no output"

    def _cleanup_ready(self) -> None:
        if self._ready_dir:
            shutil.rmtree(self._ready_dir, ignore_errors=True)
            self._ready_dir = None

    def alive(self) -> bool:
        return self.process is not None and self.process.alive()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)
        self._cleanup_ready()

    def kill(self) -> None:
        """SIGKILL, as a crashed camera would die."""
        if self.process is not None:
            self.process.kill()
        self._cleanup_ready()

    def __enter__(self) -> "RtspTestCamera":
        if not self.alive():
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _ffmpeg() -> str:
    for candidate in (os.environ.get("SPECTARE_FFMPEG"), *_FFMPEG_CANDIDATES, shutil.which("ffmpeg")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise StackError("ffmpeg is not installed (needed to build test camera clips); run `make setup`")


def _fps_arg(fps: float) -> str:
    return str(int(fps)) if float(fps).is_integer() else repr(float(fps))


def make_test_clip(source: Path, out: Path, *, width: int, height: int, fps: float, gop_seconds: float,
                   seconds: float, bitrate_kbps: int | None = None, bframes: int = 0,
                   sync_marks: tuple[float, float] | None = None) -> Path:
    """Transcode `source` into an MP4 a test camera can serve, and return `out`.

    H.264 (High profile, yuv420p), `bframes` B-frames (0: none; 3 with x264's other defaults, pyramid and
    adaptive placement, is what x264 makes by default), a closed GOP of exactly fps*gop_seconds frames (an IDR
    every GOP and nowhere else), no audio, scaled and centre-cropped to width x height at `fps`, the
    source looped as often as needed to last `seconds`. `sync_marks=(every, first)`: the whole picture is white
    for one frame every `every` seconds from `first` (the flashes an RTSP test camera with the same `sync_marks`
    beeps at; the clip must last a whole number of `every`, so the marks keep their rhythm as it loops).
    Cached: when `out` exists, is newer than `source` and was made with the same settings, nothing is done.
    """
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise StackError(f"source video {source} not found")
    gop = round(fps * gop_seconds)
    frames = round(fps * seconds)
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"clip size {width}x{height} must be positive and even")
    if gop < 1 or frames < 1:
        raise ValueError(f"fps={fps}, gop_seconds={gop_seconds}, seconds={seconds} give an empty GOP or clip")
    flash = marks = ""
    if sync_marks is not None:
        period, first = round(fps * sync_marks[0]), round(fps * sync_marks[1])
        if period < 2 or frames % period or not 0 <= first < period:
            raise ValueError(f"sync marks every {sync_marks[0]} s from {sync_marks[1]} s: they must be whole frames "
                             "apart, the first within the first period, the clip a whole number of periods")
        flash = rf",drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='eq(mod(n\,{period})\,{first})'"
        marks = f" marks={period}/{first}"
    settings = f"spectare-testclip w={width} h={height} fps={_fps_arg(fps)} gop={gop} frames={frames} " \
               f"kbps={bitrate_kbps or 'crf23'}" + (f" bf={bframes}" if bframes else "") + marks
    if out.is_file() and out.stat().st_mtime >= source.stat().st_mtime and _clip_settings(out) == settings:
        return out

    ffmpeg = _ffmpeg()
    if bitrate_kbps:
        kbps = bitrate_kbps
        rate = ["-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{2 * kbps}k"]
    else:
        rate = ["-crf", "23"]
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.stem}.part{os.getpid()}{out.suffix or '.mp4'}")
    argv = [
        ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
        "-stream_loop", "-1", "-i", str(source),
        "-map", "0:v:0", "-an", "-sn", "-dn", "-map_metadata", "-1",
        "-vf", f"fps={_fps_arg(fps)},scale={width}:{height}:force_original_aspect_ratio=increase,"
               f"crop={width}:{height},setsar=1{flash}",
        "-frames:v", str(frames),
        "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-bf", str(bframes), "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-flags", "+cgop",
        *rate,
        "-metadata", f"comment={settings}",
        "-movflags", "+faststart", "-f", "mp4", str(part),
    ]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=max(120.0, seconds * 10))
    except subprocess.TimeoutExpired:
        part.unlink(missing_ok=True)
        raise StackError(f"ffmpeg took too long to build {out} from {source}") from None
    if result.returncode != 0:
        part.unlink(missing_ok=True)
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise StackError(f"ffmpeg failed to build {out} from {source}: {detail}")
    os.replace(part, out)
    return out


def _clip_settings(path: Path) -> str | None:
    import av

    try:
        with av.open(str(path)) as container:
            return container.metadata.get("comment")
    except (av.FFmpegError, OSError):
        return None


@dataclass(frozen=True)
class ClipInfo:
    frames: int
    fps: float
    width: int
    height: int
    duration: float  # seconds: frames / fps
    codec: str


def probe_clip(path: Path) -> ClipInfo:
    """What a clip holds, by demuxing it (no decoding): frame count, rate, size, duration, codec."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise StackError(f"cannot read clip {path}: {exc}") from None
    with container:
        if not container.streams.video:
            raise StackError(f"clip {path} has no video stream")
        stream = container.streams.video[0]
        frames = sum(1 for packet in container.demux(stream) if packet.size)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        ctx = stream.codec_context
        if fps:
            duration = frames / fps
        elif stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = 0.0
        return ClipInfo(frames=frames, fps=fps, width=ctx.width, height=ctx.height, duration=duration,
                        codec=ctx.name)
