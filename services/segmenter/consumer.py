"""The segmenter's JetStream side for one camera: its durable consumer, where its stored footage ends,
and the StreamInfo of a session it joins midway.

Consumer `seg_<cam>` on the MEDIA stream (the stream name carries the deployment prefix, so the
consumer name need not), filtered to the camera's info and packets subjects, AckPolicy.ALL: acking
a chunk's last message settles the chunk and everything before it. On every start the consumer is
recreated from its ack floor (read the floor, delete, create with `by_start_sequence` floor + 1; see
`spectare.core.consumer.open_durable`):
after a kill -9 everything not acked is delivered again at once, instead of after ack_wait, and
settings changes (ack_wait, max_ack_pending) take effect. A camera without a consumer starts at the
beginning of the buffer, or, when footage of it is already stored, a little before that footage
ends (the chunker skips what is stored).

The consumer is read by a `Puller`: one long-lived pull request at a time (up to fetch_batch
messages, PULL_MAX_BYTES, fetch_timeout_s), so messages flow as they are stored instead of one
request, round trip, status reply and timer per batch (that machinery cost more CPU than the
packets themselves).
"""

import asyncio
import json
import logging
import time
from datetime import UTC, datetime

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, Header
from nats.js.errors import NotFoundError

from spectare.core.bus import MAX_MESSAGE_BYTES
from spectare.core.config import Settings
from spectare.core.consumer import consumer_state, open_durable
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
        event = decode_one_of(raw.data or b"", Segment, Gap)
    except SchemaError as exc:
        log.warning("camera %s: last footage event is unreadable (%s); starting without it", camera, exc)
        return None, None
    if isinstance(event, Segment):
        return Tail(event.session, event.end, event.last_seq), None
    return Tail(event.session or "", event.start), event


async def open_consumer(js: JetStreamContext, settings: Settings, seg: SegmenterSettings, camera: str,
                        tail: Tail | None) -> None:
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
    info = await consumer_state(js, stream, durable)
    if info is not None:
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
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
    await open_durable(js, stream, config, recreate=info is not None)


# Bytes one pull request may deliver: bounds what waits in memory between two takes (a catching-up camera),
# and always fits one message of the largest size the bus allows (the server ends a request with 409 when
# the next message does not fit; a message that never fits doubles it).
PULL_MAX_BYTES = 2 * MAX_MESSAGE_BYTES
# How long past its expiry a pull request's end may take to arrive before it counts as lost.
PULL_GRACE_S = 1.0


class Puller:
    """Reads one durable pull consumer through long-lived pull requests, one open at a time.

    Messages are delivered into a private inbox as they are stored and wait in a list until `take()`; a
    request ends when it delivered `batch` messages or `max_bytes` (then more are probably waiting: `backlog`),
    when it expires (status 408), when the connection was re-established (it may have been lost), or when the
    server refuses it (`refused` holds the status, e.g. 409 Consumer Deleted; 503 when there is no consumer).
    A request that ended with its last message is confirmed by a 409 Batch Completed, which is not a refusal.
    `pull()` opens the next one. Status replies and heartbeats never reach the caller.
    """

    def __init__(self, nc: NATS, js: JetStreamContext, stream: str, durable: str, batch: int, expires_s: float,
                 max_bytes: int = PULL_MAX_BYTES) -> None:
        self._nc = nc
        prefix = getattr(js, "_prefix", None) or "$JS.API"  # nats-py's own pull subscriptions use the same
        self._subject = f"{prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.batch, self.expires_s, self.max_bytes = batch, expires_s, max_bytes
        self._inbox = ""
        self._sub: Subscription | None = None
        self._msgs: list[Msg] = []
        self._open = False  # a pull request is open at the server
        self._left = 0  # messages the open request may still deliver
        self._delivered = 0  # messages the open request delivered
        self._deadline = 0.0  # monotonic time after which the open request counts as lost
        self._reconnects = 0
        self._counted_full = 0  # requests ended by count whose 409 Batch Completed has not come yet
        self._waiter: asyncio.Future[None] | None = None
        self._wake_on_message = False
        self.backlog = False  # the last request ended full: more messages are probably waiting
        self.refused: str | None = None  # the status the server refused the last request with
        self.requests = 0

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        # Limits far above what one request delivers (max_bytes), so the client never drops a message.
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_msg, pending_msgs_limit=1_000_000,
                                             pending_bytes_limit=max(8 * self.max_bytes, 256 * 1024 * 1024))

    async def close(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()

    async def pull(self) -> None:
        """Open a pull request unless one is open (one whose end did not come in time, or that was open when
        the connection dropped, counts as ended)."""
        reconnects = self._nc.stats["reconnects"]
        if self._open and time.monotonic() < self._deadline and reconnects == self._reconnects:
            return
        request = {"batch": self.batch, "expires": int(self.expires_s * 1e9), "max_bytes": self.max_bytes}
        await self._nc.publish(self._subject, json.dumps(request).encode(), reply=self._inbox)
        self._reconnects = reconnects
        self._open, self._left, self._delivered = True, self.batch, 0
        self._deadline = time.monotonic() + self.expires_s + PULL_GRACE_S
        self.backlog, self.refused = False, None
        self.requests += 1

    def take(self) -> list[Msg]:
        """The messages delivered since the last call, in order."""
        msgs, self._msgs = self._msgs, []
        return msgs

    async def wait(self, until: float, for_message: bool = False) -> None:
        """Wait until the event loop's clock reads `until`, or less: until the open request ends (or,
        `for_message`, a message arrives)."""
        if not self._open or (for_message and self._msgs):
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self._wake_on_message = for_message
        timer = loop.call_at(until, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get("Status")
        if status is None:
            self._msgs.append(msg)
            self._delivered += 1
            self._left -= 1
            if self._left <= 0:
                self._counted_full += 1  # the server confirms it with a 409 Batch Completed
                self._ended(backlog=True)
            elif self._wake_on_message and self._waiter is not None:
                _wake(self._waiter)
        elif status == "100":
            pass  # idle heartbeat (not asked for)
        elif status in ("408", "404"):
            self._ended(backlog=False)
        elif status == "409" and "Batch Completed" in (headers.get(Header.DESCRIPTION) or ""):
            if self._counted_full:  # the end of a request already counted full
                self._counted_full -= 1
            else:
                self._ended(backlog=True)
        elif status == "409" and "MaxBytes" in (headers.get(Header.DESCRIPTION) or ""):
            if self._delivered == 0:  # the next message alone is larger than a request may carry
                self.max_bytes *= 2
                log.warning("a message on %s is larger than %d bytes; pull requests now carry up to %d",
                            self._subject, self.max_bytes // 2, self.max_bytes)
            self._ended(backlog=True)
        else:
            self.refused = f"{status} {headers.get(Header.DESCRIPTION) or ''}".strip()
            self._ended(backlog=False)

    def _ended(self, backlog: bool) -> None:
        self._open, self.backlog = False, backlog
        if self._waiter is not None:
            _wake(self._waiter)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


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

    def _decode(self, data: bytes | None, session: str) -> StreamInfo | None:
        try:
            info = StreamInfo.decode(data or b"")
        except SchemaError:
            return None
        return info if info.session == session and info.camera == self.camera else None
