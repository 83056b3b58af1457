"""The segmenter's JetStream side for one camera: its durable consumer, where its stored footage ends,
and the StreamInfo of a session it joins midway.

Consumer `seg_<cam>` on the MEDIA stream (the stream name carries the deployment prefix, so the
consumer name need not), filtered to the camera's info and packets subjects, AckPolicy.ALL: acking
a chunk's last message settles the chunk and everything before it. On every start the consumer is
recreated from its ack floor (read the floor, delete, create with `by_start_sequence` floor + 1):
after a kill -9 everything not acked is delivered again at once, instead of after ack_wait, and
settings changes (ack_wait, max_ack_pending) take effect. A camera without a consumer starts at the
beginning of the buffer, or, when footage of it is already stored, a little before that footage
ends (the chunker skips what is stored).
"""

import logging
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from spectare.core.config import Settings
from spectare.core.errors import SchemaError
from spectare.schemas import Gap, Segment, StreamInfo, decode_one_of

from .chunker import Tail
from .settings import SegmenterSettings

log = logging.getLogger(__name__)

# Without an ack floor, start this long before the stored footage ends (ingest stamps packets with
# their receive time, so stream time and wall time agree to well within this).
RESUME_MARGIN_S = 120.0
INFO_SCAN_LIMIT = 10_000


def consumer_name(camera: str) -> str:
    return f"seg_{camera}"


async def read_footage_end(js: JetStreamContext, settings: Settings, camera: str) -> tuple[Tail | None, Gap | None]:
    """Where the camera's announced footage ends: the tail of its last Segment, or its last Gap when
    that came later (a gap whose end is not known yet stays open for the next chunk to close)."""
    names = settings.names
    try:
        raw = await js.get_last_msg(names.footage_stream, names.footage(camera))
    except NotFoundError:
        return None, None
    try:
        event = decode_one_of(raw.data, Segment, Gap)
    except SchemaError as exc:
        log.warning("camera %s: last footage event is unreadable (%s); starting without it", camera, exc)
        return None, None
    if isinstance(event, Segment):
        return Tail(event.session, event.end, event.last_seq), None
    return Tail(event.session or "", event.start), event


async def open_consumer(js: JetStreamContext, settings: Settings, seg: SegmenterSettings, camera: str,
                        tail: Tail | None) -> JetStreamContext.PullSubscription:
    names = settings.names
    stream, durable = names.media_stream, consumer_name(camera)
    config = ConsumerConfig(
        durable_name=durable,
        description=f"segmenter of camera {camera}",
        ack_policy=AckPolicy.ALL,
        ack_wait=seg.ack_wait_s,
        max_ack_pending=seg.max_ack_pending,
        filter_subjects=[names.info(camera), names.packets(camera)],
    )
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        info = None
    if info is not None:
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        await js.delete_consumer(stream, durable)
        config.deliver_policy, config.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, floor + 1
        log.info("camera %s: resuming after stream sequence %d (%d un-acked messages delivered again)",
                 camera, floor, info.num_ack_pending)
    elif tail is not None:
        start = datetime.fromtimestamp(max(tail.end - RESUME_MARGIN_S, 0), tz=UTC)
        config.deliver_policy, config.opt_start_time = DeliverPolicy.BY_START_TIME, start
        log.warning("camera %s: no consumer state but stored footage ends at %s: resuming from %s",
                    camera, datetime.fromtimestamp(tail.end, tz=UTC).isoformat(), start.isoformat())
    else:
        config.deliver_policy = DeliverPolicy.ALL
        log.info("camera %s: new camera, recording from the start of the buffer", camera)
    await js.add_consumer(stream, config)
    return await js.pull_subscribe_bind(durable=durable, stream=stream)


class InfoLookup:
    """Finds the StreamInfo of a session whose info message was consumed (acked) before a restart."""

    def __init__(self, js: JetStreamContext, settings: Settings, camera: str) -> None:
        self.js = js
        self.stream = settings.names.media_stream
        self.subject = settings.names.info(camera)
        self.camera = camera
        self.seen: dict[str, StreamInfo] = {}

    def remember(self, info: StreamInfo) -> None:
        self.seen[info.session] = info
        while len(self.seen) > 8:
            del self.seen[next(iter(self.seen))]

    async def find(self, session: str, before_seq: int) -> StreamInfo | None:
        """The StreamInfo of `session` published before stream sequence `before_seq`, or None."""
        if session in self.seen:
            return self.seen[session]
        try:
            last = await self.js.get_last_msg(self.stream, self.subject)
        except NotFoundError:
            return None
        found = self._decode(last.data, session)
        if found is None:  # an older session: walk the (few) info messages from the oldest kept
            seq = 1
            for _ in range(INFO_SCAN_LIMIT):
                try:
                    raw = await self.js.get_msg(self.stream, seq=seq, subject=self.subject, next=True)
                except NotFoundError:
                    break
                if raw.seq is None or raw.seq >= before_seq:
                    break
                found = self._decode(raw.data, session) or found
                seq = raw.seq + 1
        if found is not None:
            self.remember(found)
        return found

    def _decode(self, data: bytes, session: str) -> StreamInfo | None:
        try:
            info = StreamInfo.decode(data)
        except SchemaError:
            return None
        return info if info.session == session and info.camera == self.camera else None
