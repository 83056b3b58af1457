"""One camera read with PyAV (FFmpeg) in a thread of its own: demux only, never decode.

Used for what Spectare's own RTSP client (rtsp.py) does not read: other URL schemes, and streams it
hands back as unsupported.

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
from .media import VIDEO_CODECS, SourceEnded, SourceInfo
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
    async def open(cls, url: str, open_timeout_s: float, read_timeout_s: float, probe_size: int) -> "FfmpegSource":
        container = await asyncio.to_thread(_open, url, open_timeout_s, read_timeout_s, probe_size)
        try:
            info = _describe(container, url)
        except Exception:
            container.close()
            raise
        return cls(container, info)

    def _read(self) -> None:
        stream = self.container.streams.video[0]
        try:
            for packet in self.container.demux(stream):
                if self._closed.is_set():
                    return
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream flush packet
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

    async def next(self) -> RawPacket:
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


def _describe(container: av.container.InputContainer, url: str) -> SourceInfo:
    if not container.streams.video:
        raise OpenFailed(redact(f"cannot open {url}: it has no video track"), "no_video")
    video = container.streams.video[0]
    codec = video.codec_context.name
    if codec not in VIDEO_CODECS:
        raise OpenFailed(redact(f"cannot open {url}: video codec {codec} is not recordable (needs H.264 or H.265)"),
                         "unsupported")
    rate = video.average_rate or video.guessed_rate
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    return SourceInfo(
        codec=codec,
        width=video.codec_context.width,
        height=video.codec_context.height,
        time_base=video.time_base or Fraction(1, 90000),
        extradata=bytes(video.codec_context.extradata or b""),
        fps=float(rate) if rate else None,
        audio=audio,
    )
