"""One camera read with PyAV (FFmpeg) in a thread of its own: demux only, never decode.

Used for what Spectare's own RTSP client (rtsp.py) does not read: other URL schemes, and streams it
hands back as unsupported.

Audio packets (AAC, G.711) are demuxed beside the video and handed over one by one as `AudioUnits`, their pts on
the video's timeline (FFmpeg lines its streams up; for RTSP from the RTCP sender reports).

The reader thread hands packets to the event loop through a bounded queue, so a slow publisher
slows reading (TCP back-pressure to the camera) instead of growing memory.
"""

import asyncio
import logging
import threading
import time
from collections import deque
from fractions import Fraction

import av

from spectare.core.redact import redact

from .failures import OpenFailed, ffmpeg_error_kind
from .media import AUDIO_CODECS, VIDEO_CODECS, AudioInfo, AudioUnits, SourceEnded, SourceInfo
from .timing import RawPacket

log = logging.getLogger(__name__)


class FfmpegSource:
    """Open with `await FfmpegSource.open(...)`, then `await source.next()` per packet."""

    def __init__(self, container: av.container.InputContainer, info: SourceInfo, queue_size: int = 64) -> None:
        self.container = container
        self.info = info
        self._items: deque = deque()
        self._lock = threading.Lock()
        self._space = threading.Semaphore(queue_size)
        self._ready = asyncio.Event()
        self._signalled = False  # a wake-up is already on its way to the loop
        self._loop = asyncio.get_running_loop()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="rtsp-reader", daemon=True)
        self._thread.start()

    @classmethod
    async def open(cls, url: str, open_timeout_s: float, read_timeout_s: float, probe_size: int,
                   audio: bool = True) -> "FfmpegSource":
        """`audio`: also deliver the camera's audio track (when it is one Spectare records)."""
        container = await asyncio.to_thread(_open, url, open_timeout_s, read_timeout_s, probe_size)
        try:
            info = _describe(container, url, audio)
        except Exception:
            container.close()
            raise
        return cls(container, info)

    def _read(self) -> None:
        stream = self.container.streams.video[0]
        streams = [stream, self.container.streams.audio[0]] if self.info.audio is not None else [stream]
        try:
            for packet in self.container.demux(*streams):
                if self._closed.is_set():
                    return
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream flush packet
                raw: RawPacket | AudioUnits
                if packet.stream is not stream:
                    if packet.pts is None:
                        continue  # an audio packet with no time cannot be placed
                    raw = AudioUnits(packet.pts, packet.duration or 0, (bytes(packet),), time.time())
                else:
                    raw = RawPacket(packet.pts, packet.dts, packet.duration or 0, packet.is_keyframe,
                                    bytes(packet), time.time())
                if not self._hand_over(raw):
                    return
            self._hand_over(SourceEnded("the camera ended the stream"))
        except av.error.FFmpegError as exc:
            self._hand_over(SourceEnded(redact(f"read failed: {exc}")))
        except Exception as exc:  # a bug must not hang the session: end it and let it reconnect
            self._hand_over(SourceEnded(f"reader crashed: {type(exc).__name__}: {redact(str(exc))}"))

    def _hand_over(self, item: object) -> bool:
        """Queue an item for the loop, waiting while the queue is full; False once closed.

        The loop is woken once per burst, not once per packet: a wake-up costs more than the packet.
        """
        while not self._space.acquire(timeout=0.5):
            if self._closed.is_set():
                return False
        with self._lock:
            self._items.append(item)
            wake, self._signalled = not self._signalled, True
        if wake:
            try:
                self._loop.call_soon_threadsafe(self._ready.set)
            except RuntimeError:  # the loop is gone
                return False
        return True

    async def next(self) -> RawPacket | AudioUnits:
        while True:
            with self._lock:
                if self._items:
                    item = self._items.popleft()
                    break
                self._signalled = False
            # A packet queued from here on sets the event only after this step yields: no lost wake-up.
            self._ready.clear()
            await self._ready.wait()
        self._space.release()
        if isinstance(item, SourceEnded):
            raise item
        return item

    def losses(self) -> dict[str, int]:
        return {}  # FFmpeg conceals them

    async def close(self) -> None:
        self._closed.set()
        await asyncio.to_thread(self._thread.join, 5)
        await asyncio.to_thread(self.container.close)


def _open(url: str, open_timeout_s: float, read_timeout_s: float, probe_size: int) -> av.container.InputContainer:
    options = {"analyzeduration": "0", "probesize": str(probe_size)}
    if url.startswith(("rtsp://", "rtsps://")):
        options["rtsp_transport"] = "tcp"
    try:
        return av.open(url, options=options, timeout=(open_timeout_s, read_timeout_s))
    except (av.error.FFmpegError, OSError) as exc:
        raise OpenFailed(redact(f"cannot open {url}: {_reason(exc)}"), ffmpeg_error_kind(exc)) from None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    if "401" in text or "Unauthorized" in text:
        return "the camera refused the credentials (401 Unauthorized)"
    return text


def _describe(container: av.container.InputContainer, url: str, want_audio: bool = True) -> SourceInfo:
    if not container.streams.video:
        raise OpenFailed(redact(f"cannot open {url}: it has no video track"), "no_video")
    video = container.streams.video[0]
    codec = video.codec_context.name
    if codec not in VIDEO_CODECS:
        raise OpenFailed(redact(f"cannot open {url}: video codec {codec} is not recordable (needs H.264 or H.265)"),
                         "unsupported")
    rate = video.average_rate or video.guessed_rate
    audio, audio_skipped = _audio(container) if want_audio and container.streams.audio else (None, None)
    return SourceInfo(
        codec=codec,
        width=video.codec_context.width,
        height=video.codec_context.height,
        time_base=video.time_base or Fraction(1, 90000),
        extradata=bytes(video.codec_context.extradata or b""),
        fps=float(rate) if rate else None,
        audio=audio,
        audio_skipped=audio_skipped,
    )


def _audio(container: av.container.InputContainer) -> tuple[AudioInfo | None, str | None]:
    """The first audio stream as an AudioInfo, or why it is not recorded."""
    stream = container.streams.audio[0]
    ctx = stream.codec_context
    if ctx.name not in AUDIO_CODECS:
        return None, f"audio codec {ctx.name} (Spectare records AAC and G.711)"
    extradata = bytes(ctx.extradata or b"")
    if ctx.name == "aac" and len(extradata) < 2:
        return None, "AAC without an AudioSpecificConfig (ADTS framing)"
    if not ctx.sample_rate or not ctx.channels or stream.time_base is None:
        return None, f"{ctx.name} audio without a sample rate, channel count or time base"
    return AudioInfo(ctx.name, ctx.sample_rate, ctx.channels, stream.time_base, extradata, shared_timeline=True), None
