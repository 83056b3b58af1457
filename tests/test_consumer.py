"""The consumer kit (spectare.core.consumer): settle semantics on stand-in messages, then opening, fetching and
settling against a real nats-server."""

import asyncio
import secrets

import nats
import nats.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy, StreamConfig

from spectare.core.backoff import Backoff
from spectare.core.consumer import Ack, InFlight, PullConsumer, consumer_state, lag, open_durable, settle

from .helpers import eventually

QUICK = Backoff(0.001, 0.001)


class StandIn:
    """A message whose settle calls fail `failures` times (with `error`), then work; acked like nats-py's Msg."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or nats.errors.TimeoutError()
        self.calls: list[str] = []
        self.acked = False

    async def _call(self, name: str, final: bool = True) -> None:
        if self.acked:
            raise nats.errors.MsgAlreadyAckdError(self)
        self.calls.append(name)
        if self.failures:
            self.failures -= 1
            raise self.error
        self.acked = final

    async def ack_sync(self, timeout: float) -> None:
        await self._call("ack")

    async def term(self) -> None:
        await self._call("term")

    async def nak(self, delay: float | None = None) -> None:
        await self._call("nak")

    async def in_progress(self) -> None:
        await self._call("in_progress", final=False)


@pytest.mark.parametrize("how", list(Ack))
async def test_each_settle_sends_its_own_reply(how):
    msg = StandIn()
    assert await settle(msg, how)
    assert msg.calls == [how.value]


async def test_a_message_already_settled_counts_as_settled():
    msg = StandIn()
    assert await settle(msg, Ack.TERM)
    errors: list[BaseException] = []
    for how in Ack:
        assert await settle(msg, how, on_error=errors.append)
    assert msg.calls == ["term"] and errors == []


async def test_failures_are_retried_then_given_up_without_raising():
    errors: list[BaseException] = []
    msg = StandIn(failures=2, error=nats.errors.ConnectionReconnectingError())
    assert await settle(msg, attempts=3, backoff=QUICK, on_error=errors.append)
    assert msg.calls == ["ack"] * 3 and len(errors) == 2
    errors.clear()
    msg = StandIn(failures=5)
    assert not await settle(msg, Ack.TERM, attempts=2, backoff=QUICK, on_error=errors.append)
    assert msg.calls == ["term"] * 2 and all(isinstance(e, TimeoutError) for e in errors) and len(errors) == 2
    assert not await settle(StandIn(failures=1))  # one attempt, no callback: still no exception


async def test_a_bug_is_not_mistaken_for_a_nats_failure():
    with pytest.raises(ValueError):
        await settle(StandIn(failures=1, error=ValueError("bug")), attempts=3, backoff=QUICK)


async def test_in_flight_keeps_unsettled_messages_alive():
    one, two, three = StandIn(), StandIn(), StandIn(failures=2)
    errors: list[BaseException] = []
    in_flight = InFlight(on_error=errors.append)
    in_flight.add([one, two, three])
    assert await in_flight.settle(one)
    in_flight.keep_alive()
    for _ in range(2):
        await asyncio.sleep(0)  # the in_progress replies are sent in tasks of their own
    assert (one.calls, two.calls, three.calls) == (["ack"], ["in_progress"], ["in_progress"])
    assert errors == [], "keeping alive is best effort: a failed in_progress is not reported"
    assert not await in_flight.settle(three, Ack.TERM)  # its second failure: reported, left to JetStream
    assert three.calls == ["in_progress", "term"] and len(errors) == 1
    in_flight.forget([two])
    assert len(in_flight) == 0
    in_flight.keep_alive()
    await asyncio.sleep(0)
    assert two.calls == ["in_progress"] and three.calls == ["in_progress", "term"], "nothing left to keep alive"


def test_lag_is_pending_plus_awaiting_ack():
    def info(**counts) -> ConsumerInfo:
        return ConsumerInfo(stream_name="S", name="c", config=ConsumerConfig(), created=0.0, **counts)

    assert lag(info(num_pending=7, num_ack_pending=3)) == 10
    assert lag(info()) == 0


# -- against nats-server --------------------------------------------------------------------------------

@pytest.fixture
async def bus(nats_server):
    """A connection and a stream of three messages on `<subject>.1..3`, removed afterwards."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    stream, subject = f"KIT_{secrets.token_hex(4)}", f"kit.{secrets.token_hex(4)}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject}.>"]))
    for i in (1, 2, 3):
        await js.publish(f"{subject}.{i}", str(i).encode())
    yield js, stream
    await js.delete_stream(stream)
    await nc.close()


def explicit(durable: str, **options) -> ConsumerConfig:
    return ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=30, **options)


async def test_settle_against_the_server(bus):
    """ack is confirmed and final, a second settle of the same message is a no-op, term is final, nak
    redelivers at once."""
    js, stream = bus
    consumer = PullConsumer(js, stream, explicit("kit"))
    await consumer.open(recreate=False)
    try:
        assert lag(await js.consumer_info(stream, "kit")) == 3
        one, two, three = await consumer.fetch(3, timeout=10)
        assert await settle(one)
        assert await settle(one) and await settle(one, Ack.TERM) and await settle(one, Ack.NAK)
        assert await settle(two, Ack.TERM)
        assert await settle(three, Ack.NAK)
        (again,) = await consumer.fetch(3, timeout=10)
        assert again.metadata.sequence.stream == 3 and again.metadata.num_delivered == 2
        assert await settle(again, Ack.IN_PROGRESS) and await settle(again)

        async def all_settled() -> bool:
            info = await js.consumer_info(stream, "kit")
            return info.num_ack_pending == 0 and info.ack_floor.stream_seq == 3 and lag(info) == 0

        await eventually(all_settled, 10, interval=0.05, what="every message settled")
        assert await consumer.fetch(3, timeout=0.5) == [], "a terminated message is never delivered again"
    finally:
        await consumer.close()


async def test_open_recreates_from_the_config_or_updates_in_place(bus):
    js, stream = bus
    consumer = PullConsumer(js, stream, explicit("kit"))
    await consumer.open(recreate=False)
    try:
        for msg in await consumer.fetch(2, timeout=10):
            assert await settle(msg)
        # Updated in place (a shared consumer): its position stays.
        consumer.config = explicit("kit", description="updated")
        await consumer.open(recreate=False)
        info = await consumer_state(js, stream, "kit")
        assert info is not None and info.config.description == "updated" and info.ack_floor.stream_seq == 2
        # Recreated: the config's start applies, whatever the old consumer had delivered.
        consumer.config = explicit("kit", deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=1)
        await consumer.open(recreate=True)
        assert [m.metadata.sequence.stream for m in await consumer.fetch(3, timeout=10)] == [1, 2, 3]
    finally:
        await consumer.close()
    await js.delete_consumer(stream, "kit")
    assert await consumer_state(js, stream, "kit") is None
    info = await open_durable(js, stream, explicit("kit"), recreate=True)  # nothing to delete: created
    assert info.name == "kit" and info.num_pending == 3
