"""The live hub: one source per camera per API process, shared by every viewer of that camera.

A camera's `Feed` starts with its first viewer and stops `live_linger_s` after its last one leaves. It reads the
camera's StreamInfo and packets through one ordered consumer on the MEDIA stream (filtered to `cams.<cam>.info` and
`cams.<cam>.packets`), started a little before the time of the last message on `cams.<cam>.keyframes`, so the
latest keyframe already in JetStream is among the first packets read. Each packet group becomes one fragment
(`spectare.media.fragments`) once, for all viewers; the feed keeps the current GOP's fragments, so a viewer who comes
later also starts at the latest keyframe. Fragments go out only once the consumer has caught up (nothing pending),
so nobody is fed the GOPs before the latest. A session's audio packets go into the fragments of their groups (one
`moof`, a `traf` per track), so a stream started at a keyframe has its audio from there on; a group is cut before
each video keyframe (`runs_from_keyframes`), and a hole is a hole whichever track it hit (one seq space).

Each `Viewer` has a bounded queue (`live_queue_frames`, `live_queue_bytes`). A fragment that does not fit moves the
viewer forward: what it had queued is dropped, and it resumes at the next keyframe with a `Skipped` notice first.
The sender (the WebSocket route) drops a viewer that takes nothing for `live_send_timeout_s`; nothing else waits
on a viewer, so a stalled one costs at most its queue.

While a camera has a feed, the hub keeps a live mark of it in the `live` bucket (`spectare.core.live`), so that
ingest sends that camera's packets in short groups (`[ingest] live_group_max_s`) instead of waiting up to a second.
"""

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError as StreamMsgNotFound
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from spectare.core.bus import open_bucket
from spectare.core.config import Settings
from spectare.core.errors import SchemaError
from spectare.core.live import LIVE_MARK_REFRESH_S
from spectare.media.fragments import Fragment, LiveMuxer, LiveMuxError
from spectare.schemas import Packet, PacketGroup, StreamInfo, live_mark_key
from spectare.schemas.messages import unpack_message

from .settings import ApiSettings

log = logging.getLogger(__name__)

LOOKBACK_S = 3.0  # the latest keyframe's packet group is stored just before its Keyframe message; read from before
CONSUMER_INACTIVE_S = 30.0  # the server drops a feed's consumer this long after its process went away
KEPT_SESSIONS = 4  # StreamInfos remembered (the current session's and the few before it)
GOP_MAX_BYTES = 64 * 1024 * 1024  # a GOP larger than this is not kept for later viewers (they wait for the next)


@dataclass(frozen=True, eq=False)
class StreamStart:
    """What a viewer gets before a stream's first fragment: the `stream` text message and the init segment. One per
    muxer, compared by identity: a stream restarted within a session is a new one."""

    session: str
    message: str
    init: bytes


@dataclass(frozen=True)
class Skipped:
    """A viewer was moved forward: `frames` frames it will never get, and why."""

    frames: int
    reason: str

    @property
    def message(self) -> str:
        return json.dumps({"type": "skipped", "frames": self.frames, "reason": self.reason})


Item = StreamStart | Fragment | Skipped


def runs_from_keyframes(packets: tuple[Packet, ...]) -> list[tuple[Packet, ...]]:
    """A packet group cut before each video keyframe, so that a fragment a viewer may start at begins with its
    keyframe (ingest sends every keyframe alone; this keeps the hub right whatever the grouping)."""
    runs: list[list[Packet]] = []
    for packet in packets:
        if not runs or (packet.track == "video" and packet.keyframe):
            runs.append([])
        runs[-1].append(packet)
    return [tuple(run) for run in runs if run]


class LiveMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.viewers = Gauge("spectare_api_live_viewers", "live WebSocket viewers connected", registry=registry)
        self.feeds = Gauge("spectare_api_live_feeds", "cameras with a live source running in this process",
                           registry=registry)
        self.skipped = Counter("spectare_api_live_skipped_frames", "frames live viewers were moved past because "
                               "they fell behind", registry=registry)
        self.dropped = Counter("spectare_api_live_dropped_viewers", "live viewers dropped because they took no data "
                               "for live_send_timeout_s", registry=registry)
        self.bad_messages = Counter("spectare_api_live_bad_messages", "messages a live source could not use "
                                    "(garbage, no stream info, unmuxable packets)", registry=registry)
        self.latency = Histogram("spectare_api_live_latency_seconds", "capture (a packet's wall time) to its "
                                 "fragment being handed to the viewers, per frame", registry=registry,
                                 buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5))


class Viewer:
    """One WebSocket's queue. The hub offers fragments; the route takes items with `next()`."""

    def __init__(self, camera: str, max_frames: int, max_bytes: int, metrics: LiveMetrics) -> None:
        self.camera = camera
        self.max_frames, self.max_bytes = max_frames, max_bytes
        self.metrics = metrics
        self.feed: Feed | None = None  # set by LiveHub.join
        self.ended: tuple[int, str] | None = None  # (close code, reason) when the source failed
        self._items: deque[Item] = deque()
        self._frames = self._bytes = 0
        self._ready = asyncio.Event()
        self._queued_start: StreamStart | None = None  # the stream (init) whose fragments are queued or sent
        self._sent_start: StreamStart | None = None  # ... whose init the sender has taken
        self._skipping: Skipped | None = None  # frames skipped so far while waiting for a keyframe

    def offer(self, start: StreamStart, fragment: Fragment) -> None:
        if self._skipping is not None:
            if not fragment.keyframe:
                self._skip(fragment.frames)
                return
            self._push(self._skipping)
            self._skipping = None
        elif self._items and (self._frames + fragment.frames > self.max_frames
                              or self._bytes + len(fragment.data) > self.max_bytes):
            reason = (f"fell behind: {self._frames} frames ({self._bytes} bytes) were waiting to be sent; resuming at "
                      "the next keyframe")
            notices, frames = self._drop_queue()
            self._skipping = Skipped(notices, reason)
            self._skip(frames)
            if not fragment.keyframe:
                self._skip(fragment.frames)
                return
            self._push(self._skipping)
            self._skipping = None
        if self._queued_start is not start:
            if not fragment.keyframe:  # a stream's picture can only start at a keyframe
                return
            self._push(start)
            self._queued_start = start
        self._push(fragment)

    async def next(self) -> Item | None:
        """The next item to send; None once the source has ended."""
        while not self._items:
            if self.ended is not None:
                return None
            self._ready.clear()
            await self._ready.wait()
        item = self._items.popleft()
        if isinstance(item, Fragment):
            self._frames -= item.frames
            self._bytes -= len(item.data)
        elif isinstance(item, StreamStart):
            self._sent_start = item
            self._bytes -= len(item.init)
        return item

    def end(self, code: int, reason: str) -> None:
        self.ended = (code, reason)
        self._ready.set()

    def _push(self, item: Item) -> None:
        self._items.append(item)
        if isinstance(item, Fragment):
            self._frames += item.frames
            self._bytes += len(item.data)
        elif isinstance(item, StreamStart):
            self._bytes += len(item.init)
        self._ready.set()

    def _skip(self, frames: int) -> None:
        assert self._skipping is not None
        self._skipping = Skipped(self._skipping.frames + frames, self._skipping.reason)
        self.metrics.skipped.inc(frames)

    def _drop_queue(self) -> tuple[int, int]:
        """Empty the queue: (frames of the notices not yet sent, folded into the next one; frames dropped)."""
        notices = sum(i.frames for i in self._items if isinstance(i, Skipped))
        frames = self._frames
        self._items.clear()
        self._frames = self._bytes = 0
        self._queued_start = self._sent_start  # a StreamStart dropped unsent is queued again before its stream
        return notices, frames


class Feed:
    """One camera's live source: an ordered consumer, the session's muxer, the current GOP, the viewers."""

    def __init__(self, hub: "LiveHub", camera: str) -> None:
        self.hub, self.camera = hub, camera
        self.viewers: set[Viewer] = set()
        self.live = False  # the consumer has caught up: fragments go out as they are made
        self.consumer: str | None = None
        self._infos: dict[str, StreamInfo] = {}
        self._muxer: LiveMuxer | None = None
        self._start: StreamStart | None = None
        self._gop: list[Fragment] = []
        self._gop_bytes = 0
        self._next_seq: int | None = None  # None: waiting for a keyframe (a new session, or after a hole)
        self._complaints: set[str] = set()
        self._stopper: asyncio.Task | None = None
        self.task = asyncio.create_task(self._run(), name=f"live-{camera}")

    def add(self, viewer: Viewer) -> None:
        if self._stopper is not None:
            self._stopper.cancel()
            self._stopper = None
        self.viewers.add(viewer)
        if self.live:
            self._welcome(viewer)

    def remove(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        if not self.viewers and self._stopper is None:
            self._stopper = asyncio.create_task(self._stop_later())

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _stop_later(self) -> None:
        await asyncio.sleep(self.hub.api.live_linger_s)
        if not self.viewers:
            self.hub.forget(self)
            await self.stop()

    async def _run(self) -> None:
        names, js = self.hub.settings.names, self.hub.js
        sub = None
        try:
            with contextlib.suppress(StreamMsgNotFound):
                last_info = await js.get_last_msg(names.media_stream, names.info(self.camera))
                self._remember(StreamInfo.decode(last_info.data or b""))
            config = ConsumerConfig(filter_subjects=[names.info(self.camera), names.packets(self.camera)],
                                    deliver_policy=DeliverPolicy.NEW, inactive_threshold=CONSUMER_INACTIVE_S)
            with contextlib.suppress(StreamMsgNotFound):
                keyframe = await js.get_last_msg(names.keyframes_stream, names.keyframes(self.camera))
                if keyframe.time is not None:
                    config.deliver_policy = DeliverPolicy.BY_START_TIME
                    config.opt_start_time = datetime.fromtimestamp(keyframe.time.timestamp() - LOOKBACK_S, UTC)
            sub = await js.subscribe(names.packets(self.camera), stream=names.media_stream, cb=self._on_message,
                                     ordered_consumer=True, config=config)
            with contextlib.suppress(Exception):
                self.consumer = (await sub.consumer_info()).name
            if config.deliver_policy == DeliverPolicy.NEW:
                self._go_live()  # nothing to catch up on: whatever comes next is live
            await asyncio.Event().wait()  # until stopped
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("live %s: the source failed: %s", self.camera, exc)
            self.hub.forget(self)
            for viewer in self.viewers:
                viewer.end(1011, f"live source failed ({type(exc).__name__})")
        finally:
            if sub is not None:
                await self._close(js, sub)

    async def _close(self, js: JetStreamContext, sub) -> None:
        with contextlib.suppress(Exception):
            name = (await sub.consumer_info()).name
            await sub.unsubscribe()
            await js.delete_consumer(self.hub.settings.names.media_stream, name)

    async def _on_message(self, msg) -> None:
        try:
            raw = unpack_message(msg.data)
            if raw.get("kind") == StreamInfo.KIND:
                self._remember(StreamInfo.from_map(raw))
            elif raw.get("kind") == PacketGroup.KIND:
                await self._take(PacketGroup.from_map(raw).packets)
            elif raw.get("kind") == Packet.KIND:
                await self._take((Packet.from_map(raw),))
            else:
                raise SchemaError(f"unexpected message kind {raw.get('kind')!r}")
        except (SchemaError, LiveMuxError) as exc:
            self._complain(type(exc).__name__, f"skipped a message: {exc}")
        if not self.live and msg.metadata.num_pending == 0:
            self._go_live()

    def _remember(self, info: StreamInfo) -> None:
        self._infos[info.session] = info
        while len(self._infos) > KEPT_SESSIONS:
            self._infos.pop(next(iter(self._infos)))

    async def _take(self, packets: tuple[Packet, ...]) -> None:
        for run in runs_from_keyframes(packets):
            await self._take_run(run)

    async def _take_run(self, packets: tuple[Packet, ...]) -> None:
        first = packets[0]
        if self._muxer is None or first.session != self._muxer.session or first.seq != self._next_seq:
            # A new session, or a hole in this one (packets lost to the stream's limits, or numbering started
            # over): the picture resumes at a keyframe, on a timeline of its own with a `stream` message and init;
            # its audio from there on.
            if not (first.track == "video" and first.keyframe):
                self._next_seq = None
                return
            info = self._infos.get(first.session)
            if info is None:
                self._complain("no-info", f"no stream info for session {first.session}; waiting for it")
                return
            self._muxer = await asyncio.to_thread(LiveMuxer, info, first)
            self._start = StreamStart(first.session, json.dumps(self._stream_message(self._muxer)), self._muxer.init)
            if self._muxer.audio_left_out:
                self._complain("audio-left-out", f"live video without its audio: {self._muxer.audio_left_out}")
        assert self._start is not None
        self._next_seq = packets[-1].seq + 1
        if self._muxer.audio is None:  # the stream is video only: its audio packets have no track to go in
            packets = tuple(p for p in packets if p.track == "video")
            if not packets:
                return
        fragment = self._muxer.fragment(packets)
        if fragment.audio_dropped:
            self._complain("audio-dropped", f"left out {fragment.audio_dropped} audio frames from before the stream's "
                           "start or going back in time (counted in spectare_api_live_bad_messages)")
        if not fragment.data:
            return
        if fragment.keyframe:
            self._gop, self._gop_bytes = [], 0
        self._gop.append(fragment)
        self._gop_bytes += len(fragment.data)
        if self._gop_bytes > GOP_MAX_BYTES:
            self._gop, self._gop_bytes = [], 0
        if self.live:
            now = time.time()
            for wall_time in fragment.wall_times:
                self.hub.metrics.latency.observe(max(now - wall_time, 0.0))
            for viewer in self.viewers:
                viewer.offer(self._start, fragment)

    def _go_live(self) -> None:
        self.live = True
        for viewer in self.viewers:
            self._welcome(viewer)

    def _welcome(self, viewer: Viewer) -> None:
        """A viewer joining a live feed starts at the current GOP, unless it is old (the camera stopped)."""
        if not self._gop or self._start is None or not self._gop[0].keyframe:
            return
        if time.time() - self._gop[-1].captured_until > self.hub.api.stale_after_s:
            return
        for fragment in self._gop:
            viewer.offer(self._start, fragment)

    @staticmethod
    def _stream_message(muxer: LiveMuxer) -> dict:
        message = {"type": "stream", "mime": muxer.mime, "codec": muxer.codec, "width": muxer.width,
                   "height": muxer.height, "session": muxer.session, "wall_time": muxer.wall_time}
        if muxer.audio is not None:
            message["audio"] = {"codec": muxer.audio.codec, "sample_rate": muxer.audio.sample_rate,
                                "channels": muxer.audio.channels}
        return message

    def _complain(self, kind: str, text: str) -> None:
        self.hub.metrics.bad_messages.inc()
        if kind not in self._complaints:  # once per feed and kind: a broken camera must not flood the log
            self._complaints.add(kind)
            log.warning("live %s: %s", self.camera, text)


class LiveHub:
    """Every camera's feed in this API process."""

    def __init__(self, settings: Settings, api: ApiSettings, js: JetStreamContext, registry: CollectorRegistry) -> None:
        self.settings, self.api, self.js = settings, api, js
        self.metrics = LiveMetrics(registry)
        self.feeds: dict[str, Feed] = {}
        self.holder = secrets.token_hex(6)  # this process, in its live marks' keys
        self._live_kv: KeyValue | None = None
        self._marking: asyncio.Task | None = None
        self._mark_now = asyncio.Event()
        self._unmarking: set[asyncio.Task] = set()
        self._mark_failed = False

    def join(self, camera: str) -> Viewer:
        viewer = Viewer(camera, self.api.live_queue_frames, self.api.live_queue_bytes, self.metrics)
        feed = self.feeds.get(camera)
        if feed is None:
            feed = self.feeds[camera] = Feed(self, camera)
            self.metrics.feeds.set(len(self.feeds))
            self._mark_feeds()
        viewer.feed = feed
        feed.add(viewer)
        self.metrics.viewers.inc()
        return viewer

    def leave(self, viewer: Viewer) -> None:
        self.metrics.viewers.dec()
        if viewer.feed is not None:
            viewer.feed.remove(viewer)

    def forget(self, feed: Feed) -> None:
        if self.feeds.get(feed.camera) is feed:
            del self.feeds[feed.camera]
            self.metrics.feeds.set(len(self.feeds))
            task = asyncio.create_task(self._unmark(feed.camera))
            self._unmarking.add(task)
            task.add_done_callback(self._unmarking.discard)

    def _mark_feeds(self) -> None:
        """Put every feed's live mark now, and again every LIVE_MARK_REFRESH_S while there are feeds."""
        self._mark_now.set()
        if self._marking is None or self._marking.done():
            self._marking = asyncio.create_task(self._keep_marks(), name="live-marks")

    async def _keep_marks(self) -> None:
        while self.feeds:
            self._mark_now.clear()
            for camera in list(self.feeds):
                await self._put_mark(camera)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._mark_now.wait(), LIVE_MARK_REFRESH_S)

    async def _put_mark(self, camera: str) -> None:
        try:
            kv = await self._bucket()
            await kv.put(live_mark_key(camera, self.holder), b"")
            self._mark_failed = False
        except Exception as exc:  # noqa: BLE001 - without the mark the picture is only later, not lost
            if not self._mark_failed:
                self._mark_failed = True
                log.warning("live %s: could not mark the camera as watched (%s); its packets keep ingest's "
                            "longer groups", camera, exc)

    async def _unmark(self, camera: str) -> None:
        if camera in self.feeds:  # watched again already
            return
        with contextlib.suppress(Exception):  # the mark ages out by itself (the bucket's TTL)
            await (await self._bucket()).delete(live_mark_key(camera, self.holder))

    async def _bucket(self) -> KeyValue:
        if self._live_kv is None:
            self._live_kv = await open_bucket(self.js, self.settings, self.settings.names.live_bucket)
        return self._live_kv
