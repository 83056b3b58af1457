"""A service starting while its NATS cluster cannot answer JetStream requests (one node of three up: no majority,
no leader; or a node just lost and a new leader not yet elected) waits for the cluster instead of dying at start
with a traceback, and gives up with one clear line after `[nats] jetstream_patience_s`."""

import asyncio
import logging

import pytest

from spectare.core.bus import connect, ensure_topology, open_bucket
from spectare.core.config import load_settings
from spectare.core.errors import UnreachableError
from spectare.local.servers import NatsCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def lone_node(tmp_path):
    """The first node of a three-node cluster, alone: it accepts connections, JetStream answers nothing."""
    cluster = NatsCluster(tmp_path / "nats", tmp_path, size=3)
    cluster.nodes[0].start()
    yield cluster
    cluster.stop()


def cluster_settings(cluster: NatsCluster, tmp_path, patience_s: float):
    return load_settings(state_dir=tmp_path / "state", prefix="topo",
                         nats={"url": cluster.nodes[0].url, "jetstream_patience_s": patience_s},
                         streams={"replicas": 3})


async def test_the_topology_and_a_bucket_wait_for_the_cluster_to_have_a_leader(lone_node, tmp_path, caplog):
    settings = cluster_settings(lone_node, tmp_path, patience_s=90)
    nc = await connect(settings, "test")
    try:
        js = nc.jetstream(timeout=2)
        with caplog.at_level(logging.WARNING, logger="spectare.core.bus"):
            starting = asyncio.create_task(ensure_topology(js, settings))
            await asyncio.sleep(5)
            assert not starting.done(), "nothing can be created without a majority"
            for node in lone_node.nodes[1:]:
                await asyncio.to_thread(node.start)
            await asyncio.wait_for(starting, 90)
        waits = [r.getMessage() for r in caplog.records if "JetStream does not answer" in r.getMessage()]
        assert len(waits) == 1, waits  # one line when it starts waiting, not one per attempt
        info = await js.stream_info(settings.names.media_stream)
        assert info.config.num_replicas == 3
        bucket = await open_bucket(js, settings, settings.names.leases_bucket)
        assert (await bucket.status()).bucket == settings.names.leases_bucket
    finally:
        await nc.close()


async def test_a_cluster_that_never_answers_is_one_clear_error_after_the_patience(lone_node, tmp_path):
    settings = cluster_settings(lone_node, tmp_path, patience_s=4)
    nc = await connect(settings, "test")
    try:
        with pytest.raises(UnreachableError) as failed:
            await asyncio.wait_for(ensure_topology(nc.jetstream(timeout=1), settings), 30)
    finally:
        await nc.close()
    message = str(failed.value)
    assert "did not answer the topology check within 4s" in message
    assert "majority of the NATS cluster" in message and "\n" not in message
