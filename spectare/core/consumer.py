"""Reading a durable JetStream pull consumer crash-safely: the one kit the segmenter, detector and indexer share.

- `open_durable` creates the durable consumer a `ConsumerConfig` describes. `recreate=True` deletes it first,
  so that the config's start position applies (JetStream does not move an existing consumer's start): the
  segmenter (from its ack floor) and the indexer (from the database's progress) do that at every start.
  `recreate=False` creates it or updates it to the config in place, for a consumer replicas share (the
  detector's): deleting it would pull it from under the others. `consumer_state` reads it (None: none).
- `PullConsumer` is one opened that way and read through nats-py's fetch (one request per fetch). The
  segmenter reads its own through `Puller` instead (long-lived pull requests, services/segmenter/consumer.py).
- `settle` acks (confirmed by the server), naks, terminates or marks in progress one message. A message this
  client already acked, nak'd or terminated counts as settled. A failure of NATS (any nats error, a timeout)
  is never fatal: it goes to `on_error`, is retried `attempts` times with backoff, and is then left to
  JetStream (redelivered after ack_wait, or covered by the next ack under AckPolicy.ALL).
- `InFlight` holds the messages delivered and not settled yet under AckPolicy.EXPLICIT (the detector's), so
  that work waiting out an outage keeps all of them alive and each is settled as it is done with.
- `TRANSIENT_ERRORS` are what NATS raises while the connection is away; a fetch or pull request meeting one
  says so once (`pause_after`), pauses and tries again.
- `lag` is how far a consumer is behind: messages pending + delivered but not acked (what `/stats`, the
  `spectare_consumer_lag_messages` gauge and KEDA's scaler read).
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from enum import StrEnum

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, ConsumerInfo
from nats.js.errors import NotFoundError, ServiceUnavailableError

from spectare.core.backoff import Backoff
from spectare.core.logs import LogOnce

log = logging.getLogger(__name__)

# The connection is away (reconnecting, closed, draining) or its outbound buffer is full, or (a cluster) the
# stream or consumer has no leader while its nodes elect one (503): wait, try again.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError, nats.errors.OutboundBufferLimitError,
    ServiceUnavailableError, nats.errors.NoRespondersError,
)
# Any failure of NATS (the transient ones included) and a reply that did not come in time: what a settle, or a
# question whose answer can wait, treats as "not now".
NATS_ERRORS: tuple[type[Exception], ...] = (nats.errors.Error, TimeoutError)
RETRY_PAUSE_S = 1.0
FETCH_TIMEOUT_S = 1.0
ACK_TIMEOUT_S = 5.0


class Ack(StrEnum):
    """How a message is settled."""

    ACK = "ack"  # done with (under AckPolicy.ALL: with every message before it); confirmed by the server
    NAK = "nak"  # deliver it again now (or after a delay)
    TERM = "term"  # never deliver it again (garbage)
    IN_PROGRESS = "in_progress"  # still being worked on: restart its ack_wait


async def settle(msg: Msg, how: Ack = Ack.ACK, *, timeout: float = ACK_TIMEOUT_S, attempts: int = 1,
                 backoff: Backoff | None = None, on_error: Callable[[BaseException], None] | None = None,
                 nak_delay: float | None = None) -> bool:
    """Settle `msg` as `how`. True when it is settled, now or by an earlier ack, nak or term of this message
    (`IN_PROGRESS` then has nothing left to keep alive); False when every one of `attempts` failed (each failure
    is passed to `on_error`, and the next attempt waits for `backoff`)."""
    pause = backoff or Backoff(0.2, 5.0)
    for attempt in range(attempts):
        try:
            if how is Ack.ACK:
                await msg.ack_sync(timeout=timeout)
            elif how is Ack.TERM:
                await msg.term()
            elif how is Ack.NAK:
                await msg.nak(delay=nak_delay)
            else:
                await msg.in_progress()
            return True
        except nats.errors.MsgAlreadyAckdError:
            return True
        except NATS_ERRORS as exc:
            if on_error is not None:
                on_error(exc)
            if attempt + 1 < attempts:
                await asyncio.sleep(pause.next_delay())
    return False


class InFlight:
    """Messages delivered and not settled yet (AckPolicy.EXPLICIT). `keep_alive()` marks every one in progress
    (its ack_wait starts again, so JetStream does not hand it to another replica while work on it waits out an
    outage); `settle()` takes one out and settles it; `forget()` takes messages out unsettled (JetStream
    redelivers them after ack_wait)."""

    def __init__(self, timeout: float = ACK_TIMEOUT_S, on_error: Callable[[BaseException], None] | None = None) -> None:
        self.timeout = timeout
        self.on_error = on_error
        self._msgs: dict[int, Msg] = {}  # by id: Msg is unhashable
        self._alive: set[asyncio.Future[bool]] = set()  # in_progress replies on their way (kept from the GC)

    def __len__(self) -> int:
        return len(self._msgs)

    def add(self, msgs: Iterable[Msg]) -> None:
        self._msgs.update((id(msg), msg) for msg in msgs)

    def forget(self, msgs: Iterable[Msg]) -> None:
        for msg in msgs:
            self._msgs.pop(id(msg), None)

    def keep_alive(self) -> None:
        for msg in list(self._msgs.values()):
            sent = asyncio.ensure_future(settle(msg, Ack.IN_PROGRESS))
            self._alive.add(sent)
            sent.add_done_callback(self._alive.discard)

    async def settle(self, msg: Msg, how: Ack = Ack.ACK) -> bool:
        self._msgs.pop(id(msg), None)
        return await settle(msg, how, timeout=self.timeout, on_error=self.on_error)


async def pause_after(exc: BaseException, log_once: LogOnce, kind: str, what: str) -> None:
    """A transient NATS error (one of TRANSIENT_ERRORS): logged once per `kind`, then a pause before the caller
    tries again."""
    log_once.warning(kind, "%s (%s); retrying", what, type(exc).__name__)
    await asyncio.sleep(RETRY_PAUSE_S)


def lag(info: ConsumerInfo) -> int:
    """Messages the consumer has not had acked yet: pending delivery + delivered and awaiting an ack."""
    return (info.num_pending or 0) + (info.num_ack_pending or 0)


async def consumer_state(js: JetStreamContext, stream: str, durable: str,
                         timeout: float | None = None) -> ConsumerInfo | None:
    """The durable consumer's info, or None when it does not exist (other failures raise)."""
    try:
        return await js.consumer_info(stream, durable, timeout=timeout)
    except NotFoundError:
        return None


async def open_durable(js: JetStreamContext, stream: str, config: ConsumerConfig, *, recreate: bool) -> ConsumerInfo:
    """Create the durable consumer `config` describes on `stream`: after deleting the one there (`recreate`), so
    that the config's start position applies, or else creating it or updating it in place."""
    assert config.durable_name, "a durable consumer has a name"
    if recreate:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(stream, config.durable_name)
    return await js.add_consumer(stream, config)


class PullConsumer:
    """A durable pull consumer read with nats-py's fetch: `open()`, then `fetch()` until `close()`.

    `fetch` answers [] when nothing came within its timeout, and also after a transient NATS error (logged once
    on `log_once`, then a pause of RETRY_PAUSE_S); other errors (the consumer or stream deleted, not open) are
    raised.
    """

    def __init__(self, js: JetStreamContext, stream: str, config: ConsumerConfig,
                 log_once: LogOnce | None = None) -> None:
        assert config.durable_name, "a durable consumer has a name"
        self.js = js
        self.stream = stream
        self.config = config
        self.log_once = log_once or LogOnce(log)
        self.sub: JetStreamContext.PullSubscription | None = None

    @property
    def name(self) -> str:
        assert self.config.durable_name
        return self.config.durable_name

    async def open(self, *, recreate: bool) -> ConsumerInfo:
        """Create (see `open_durable`) and bind to the consumer; a subscription from an earlier open is closed."""
        await self.close()
        info = await open_durable(self.js, self.stream, self.config, recreate=recreate)
        self.sub = await self.js.pull_subscribe_bind(durable=self.name, stream=self.stream)
        return info

    async def fetch(self, batch: int, timeout: float = FETCH_TIMEOUT_S) -> list[Msg]:
        if self.sub is None:  # never opened, or an open that failed half-way: the caller opens it again
            raise RuntimeError(f"consumer {self.name} on {self.stream} is not open")
        try:
            return await self.sub.fetch(batch, timeout=timeout)
        except TimeoutError:
            return []
        except TRANSIENT_ERRORS as exc:
            await pause_after(exc, self.log_once, f"fetch:{self.stream}:{self.name}",
                              f"cannot fetch from {self.stream} (consumer {self.name})")
            return []

    async def close(self) -> None:
        """Unsubscribe (the durable consumer stays): a fetch cut short leaves messages in the subscription's queue,
        and draining the connection would wait for them."""
        if self.sub is not None:
            sub, self.sub = self.sub, None
            try:
                await sub.unsubscribe()
            except Exception as exc:  # closing anyway
                log.debug("%s/%s: unsubscribe failed: %s", self.stream, self.name, exc)
