"""One camera, for as long as this worker holds its lease: connect, publish, reconnect.

Every (re)connect is a new session `<lease token>-<attempt>` (both hex): StreamInfo first, then
every packet on `cams.<cam>.packets`, in PacketGroups (a keyframe travels alone and at once; the
packets after it wait at most `group_max_s` to travel together) with
`Nats-Msg-Id: <cam>:<session>:<first seq>`, and every keyframe, self-contained, on
`cams.<cam>.keyframes` with `Nats-Msg-Id: <cam>:<session>:<seq>` (formats in `spectare.schemas.msgids`).

Audio (camera setting `audio = copy`) travels on `cams.<cam>.packets` too, `track="audio"`, in the same groups,
several access units to a packet (those read together: `Packet.sizes`): video and audio share the session's one seq
space (so a group's Msg-Id, its first seq, stays unique, and a hole is a hole whichever track it hit), and
`interleave.TrackMerger` orders them so that every audio unit falls on its side of every keyframe, where the
segmenter cuts (a run that straddles one is split there).
"""

import asyncio
import logging
import time
from collections import Counter
from fractions import Fraction

from spectare.core.backoff import Backoff
from spectare.core.config import Settings
from spectare.core.errors import UnreachableError
from spectare.core.leases import Lease
from spectare.core.live import LiveMarks
from spectare.core.redact import redact
from spectare.schemas import (
    CameraConfig,
    Keyframe,
    Packet,
    PacketGroup,
    StreamInfo,
    VideoTrack,
    keyframe_id,
    packets_id,
    stream_info_id,
)

from .audio import AudioError, AudioPath, TimedAudio
from .failures import failure_kind
from .interleave import Merged, TrackMerger
from .media import AudioUnits, Source, SourceEnded, SourceInfo
from .publisher import OrderedPublisher, PublishFailed
from .readahead import ReadAhead
from .reorder import DecodeTimes, ReorderDepthExceeded, declared_depth
from .rtp import UnsupportedStream
from .rtsp import RtspSource
from .settings import IngestSettings
from .source import FfmpegSource
from .status import StatusReporter
from .timing import RawPacket, SessionClock

log = logging.getLogger(__name__)

# A session that delivered packets this long counts as healthy: the next failure starts the
# reconnect back-off from the beginning again.
HEALTHY_SESSION_S = 10.0


class CameraIngest:
    def __init__(self, js, settings: Settings, ingest: IngestSettings, config: CameraConfig, lease: Lease,
                 counters: Counter, live: LiveMarks | None = None, worker: str = "ingest") -> None:
        self.js = js
        self.settings = settings
        self.worker = worker  # the worker id, named in the camera's status
        self.names = settings.names
        self.ingest = ingest
        self.config = config
        self.lease = lease
        self.counters = counters
        self.live = live or LiveMarks()
        self.ffmpeg_reason: str | None = None  # why Spectare's RTSP client handed this camera to FFmpeg
        self._audio_said: set[str] = set()  # why audio is not recorded, each said once
        self.reorder_depth: int | None = None  # B-frame reorder depth measured beyond what the stream declares

    @property
    def camera(self) -> str:
        return self.config.name

    async def run(self) -> None:
        status = StatusReporter(self.js, self.settings, self.camera, self.worker)
        status.start()
        status.connecting()
        try:
            await self._reconnect_loop(status)
        finally:
            await status.stop()

    async def _reconnect_loop(self, status: StatusReporter) -> None:
        backoff = Backoff(self.ingest.reconnect_min_s, self.ingest.reconnect_max_s)
        attempt = 0
        failing_since: float | None = None
        while True:
            session = f"{self.lease.token:x}-{attempt:x}"
            attempt += 1
            try:
                source: Source = ReadAhead(await self._open(), self.ingest.read_ahead_bytes)
            except UnreachableError as exc:
                self.counters["connect_errors"] += 1
                status.failed(str(exc), failure_kind(exc))
                delay = backoff.next_delay()
                if failing_since is None:  # one line per outage, not one per attempt
                    failing_since = time.monotonic()
                    log.warning("camera %s: %s; retrying with back-off up to %.0fs", self.camera, exc,
                                self.ingest.reconnect_max_s)
                await asyncio.sleep(delay)
                continue
            if failing_since is not None:
                log.info("camera %s: reachable again after %.0fs", self.camera, time.monotonic() - failing_since)
                failing_since = None
            status.streaming(session)
            started = time.monotonic()
            try:
                await self._stream(source, session)
            except (SourceEnded, PublishFailed) as exc:
                self.counters["sessions_ended"] += 1
                if isinstance(exc, ReorderDepthExceeded):
                    self.reorder_depth = exc.needed
                log.warning("camera %s: session %s ended: %s; reconnecting", self.camera, session, redact(str(exc)))
                status.failed(f"session ended: {exc}", failure_kind(exc))
            except UnsupportedStream as exc:
                self.counters["sessions_ended"] += 1
                self._hand_to_ffmpeg(exc)
                status.failed(f"Spectare's RTSP client does not read {exc}; reconnecting with FFmpeg", "unsupported")
            finally:
                await source.close()
                self.counters.update(source.losses())
            if time.monotonic() - started >= HEALTHY_SESSION_S:
                backoff.reset()
            self.counters["reconnects"] += 1
            await asyncio.sleep(backoff.next_delay())

    async def _open(self) -> Source:
        url, ingest = self.config.url, self.ingest
        if ingest.rtsp_client == "spectare" and url.startswith("rtsp://") and self.ffmpeg_reason is None:
            try:
                return await RtspSource.open(url, ingest.open_timeout_s, ingest.read_timeout_s, ingest.read_interval_s,
                                             audio=self.config.audio == "copy")
            except UnsupportedStream as exc:
                self._hand_to_ffmpeg(exc)
        return await FfmpegSource.open(url, ingest.open_timeout_s, ingest.read_timeout_s, ingest.probe_size,
                                       audio=self.config.audio == "copy")

    def _group_max_s(self) -> float:
        """Shorter groups while someone watches live: a frame waits in its group before any viewer gets it."""
        if self.live.watched(self.camera, time.monotonic()):
            return min(self.ingest.live_group_max_s, self.ingest.group_max_s)
        return self.ingest.group_max_s

    def _hand_to_ffmpeg(self, exc: UnsupportedStream) -> None:
        self.ffmpeg_reason = str(exc)
        self.counters["ffmpeg_fallbacks"] += 1
        log.info("camera %s: Spectare's RTSP client does not read %s; reading this camera with FFmpeg",
                 self.camera, exc)

    def _audio_path(self, info: SourceInfo) -> AudioPath | None:
        reason = info.audio_skipped
        path = None
        if info.audio is not None:
            try:
                path = AudioPath(info.audio)
            except AudioError as exc:
                reason = str(exc)
        if reason is not None and reason not in self._audio_said:
            self._audio_said.add(reason)
            self.counters["audio_not_recorded"] += 1
            log.warning("camera %s: its audio is not recorded (%s); recording video only", self.camera, reason)
        return path

    def _arrivals(self, item: RawPacket | AudioUnits, clock: SessionClock, audio: AudioPath | None,
                  merger: TrackMerger | None) -> list[Merged]:
        """What one packet from the camera releases for publishing, in order."""
        if isinstance(item, AudioUnits):
            if audio is None or merger is None:
                return []
            anchor = None if clock.anchor is None or audio.anchored else (clock.anchor[0],
                                                                           float(clock.anchor[1] * clock.time_base))
            return merger.audio(audio.push(item, anchor))
        timed = clock.push(item)
        return merger.video(timed) if merger is not None else [Merged(video=t) for t in timed]

    async def _stream(self, source: Source, session: str) -> None:
        info = source.info
        audio = self._audio_path(info)
        merger = TrackMerger(self.ingest.audio_wait_s) if audio is not None else None
        publisher = OrderedPublisher(self.js, self.ingest.max_msgs_in_flight, self.ingest.max_bytes_in_flight,
                                     self.ingest.ack_timeout_s, self.ingest.publish_deadline_s)
        cam = self.camera
        try:
            stream_info = StreamInfo(camera=cam, session=session, started_at=time.time(), video=_video_track(info),
                                     audio=audio.track if audio is not None else None)
            info_payload = stream_info.encode()
            await publisher.publish(self.names.info(cam), info_payload, stream_info_id(cam, session))
            info_sent, info_repeats = time.monotonic(), 0
            log.info("camera %s: session %s from %s: %s %dx%d %s fps", cam, session, redact(self.config.url),
                     info.codec, info.width, info.height, f"{info.fps:.2f}" if info.fps else "?")
            depth = self.reorder_depth if self.reorder_depth is not None else declared_depth(info.codec, info.extradata)
            clock = SessionClock(info.time_base, _frame_duration(info), DecodeTimes(depth, _frame_duration(info)).push)
            packets_subject, keyframes_subject = self.names.packets(cam), self.names.keyframes(cam)
            group = _Group(cam, session, self.ingest.group_max_s, self.ingest.group_max_bytes)
            seq = 0
            ended: SourceEnded | None = None
            while ended is None:
                try:
                    item = await source.next()
                except SourceEnded as exc:  # what the merger still holds is published first
                    ended, ready = exc, (merger.drain() if merger is not None else [])
                else:
                    ready = self._arrivals(item, clock, audio, merger)
                for out in ready:
                    if out.audio is not None:
                        group.add(_audio_packet(cam, session, seq, out.audio))
                        if group.full():
                            await group.send(publisher, packets_subject)
                        self.counters["audio_packets"] += len(out.audio.units)
                        seq += 1
                        continue
                    timed = out.video
                    assert timed is not None
                    if timed.keyframe and group.packets:
                        await group.send(publisher, packets_subject)  # a keyframe starts a group
                    group.add(Packet(camera=cam, session=session, seq=seq, pts=timed.pts, dts=timed.dts,
                                     duration=timed.duration, keyframe=timed.keyframe, wall_time=timed.wall_time,
                                     data=timed.data))
                    if timed.keyframe:
                        # Alone and at once: a keyframe is what tells the segmenter that a chunk is complete.
                        await group.send(publisher, packets_subject)
                        keyframe = Keyframe(camera=cam, session=session, seq=seq, wall_time=timed.wall_time,
                                            codec=info.codec, width=info.width, height=info.height,
                                            extradata=info.extradata, data=timed.data)
                        await publisher.publish(keyframes_subject, keyframe.encode(), keyframe_id(cam, session, seq))
                    group.max_s = self._group_max_s()
                    if group.packets and group.full():
                        await group.send(publisher, packets_subject)
                    self.counters["packets"] += 1
                    self.counters["bytes"] += len(timed.data)
                    seq += 1
                if time.monotonic() - info_sent >= self.ingest.info_repeat_s:
                    # The packets stream keeps only minutes: a segmenter that (re)starts in a long session
                    # must still find its StreamInfo there.
                    info_repeats += 1
                    info_sent = time.monotonic()
                    await publisher.publish(self.names.info(cam), info_payload,
                                            stream_info_id(cam, session, info_repeats))
            raise ended
        except SourceEnded:
            if group.packets:
                await group.send(publisher, packets_subject)
            await publisher.flush()  # what was read before the camera went away is still recorded
            raise
        finally:
            publisher.abandon()


class _Group:
    """Packets waiting to go out together: one NATS message per group costs far less CPU (here, in
    nats-server and in the segmenter) than one per packet, for a delay of at most `max_s`."""

    def __init__(self, camera: str, session: str, max_s: float, max_bytes: int) -> None:
        self.camera, self.session = camera, session
        self.max_s, self.max_bytes = max_s, max_bytes
        self.packets: list[Packet] = []
        self.bytes = 0
        self.started = 0.0

    def add(self, packet: Packet) -> None:
        if not self.packets:
            self.started = time.monotonic()
        self.packets.append(packet)
        self.bytes += len(packet.data)

    def full(self) -> bool:
        # By media time (a burst after connecting is not one big group) and by waiting time.
        span = self.packets[-1].wall_time - self.packets[0].wall_time
        return self.bytes >= self.max_bytes or span >= self.max_s or time.monotonic() - self.started >= self.max_s

    async def send(self, publisher: OrderedPublisher, subject: str) -> None:
        group = PacketGroup(camera=self.camera, session=self.session, packets=tuple(self.packets))
        await publisher.publish(subject, group.encode(), packets_id(self.camera, self.session, self.packets[0].seq))
        self.packets, self.bytes = [], 0


def _audio_packet(camera: str, session: str, seq: int, audio: TimedAudio) -> Packet:
    """One packet for the run: its units back to back (a packet costs more than a unit, ~50 units a second)."""
    units = audio.units
    return Packet(camera=camera, session=session, seq=seq, track="audio", pts=audio.pts, dts=audio.pts,
                  duration=audio.duration, keyframe=False, wall_time=audio.wall_time,
                  data=units[0] if len(units) == 1 else b"".join(units),
                  sizes=() if len(units) == 1 else tuple(map(len, units)))


def _video_track(info: SourceInfo) -> VideoTrack:
    return VideoTrack(codec=info.codec, width=info.width, height=info.height,
                      time_base=(info.time_base.numerator, info.time_base.denominator),
                      extradata=info.extradata, fps=info.fps)


def _frame_duration(info: SourceInfo) -> int:
    fps = info.fps or 15.0
    return max(round(Fraction(1) / (Fraction(fps).limit_denominator(1001) * info.time_base)), 1)
