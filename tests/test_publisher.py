"""Ingest's ordered publisher on a NATS cluster losing the node that leads its stream: every message stored once,
in the order it was published (a reader takes a packet stored after later ones for lost)."""

import asyncio

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig

from spectare.ingest.publisher import OrderedPublisher
from spectare.local.servers import NatsCluster

pytestmark = pytest.mark.integration

MESSAGES = 40
RATE_HZ = 5  # a camera's packet groups and keyframes come a few a second: far from filling the window


@pytest.fixture
def cluster(tmp_path):
    made = NatsCluster(tmp_path / "nats", tmp_path, size=3)
    made.start()
    yield made
    made.stop()


async def test_the_stream_leader_killed_mid_publish_leaves_every_message_once_and_in_order(cluster):
    nc = await nats.connect(servers=cluster.urls, max_reconnect_attempts=-1, reconnect_time_wait=0.5)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="T", subjects=["t.>"], num_replicas=3, storage=StorageType.FILE,
                                         duplicate_window=120.0))
        leader = (await js.stream_info("T")).cluster.leader
        publisher = OrderedPublisher(js, max_msgs=64, max_bytes=8 << 20, ack_timeout_s=5.0, deadline_s=60.0)
        for seq in range(MESSAGES):
            if seq == 5:
                cluster.node(leader).kill()
            await publisher.publish("t.cam", b"x" * 1000, f"cam:1-0:{seq}")
            await asyncio.sleep(1 / RATE_HZ)
        await publisher.flush()
        sub = await js.pull_subscribe("t.cam", stream="T", config=ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL))
        stored: list[int] = []
        while len(stored) < MESSAGES:
            batch = await sub.fetch(MESSAGES, timeout=10)
            stored += [int((m.headers or {})["Nats-Msg-Id"].rsplit(":", 1)[1]) for m in batch]
        assert (await js.stream_info("T")).cluster.leader != leader
        assert stored == list(range(MESSAGES))
    finally:
        await nc.close()
