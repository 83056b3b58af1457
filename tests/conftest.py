"""Real servers for the tests: nats-server with JetStream, SeaweedFS S3, and an RTSP camera, each on
random loopback ports under a temporary directory, stopped at the end."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from spectare.core.bus import connect, ensure_topology
from spectare.core.config import Settings
from spectare.local.servers import NatsServer, S3Credentials, SeaweedS3

from .helpers import settings_for


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    root = tmp_path_factory.mktemp("nats")
    server = NatsServer(root / "data", root / "nats.log", max_file_store="8GB")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    root = tmp_path_factory.mktemp("s3")
    server = SeaweedS3(root / "data", root / "s3.log", S3Credentials.generate())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(nats_server: NatsServer, s3_server: SeaweedS3, tmp_path: Path) -> Settings:
    return settings_for(nats_server, s3_server, tmp_path / "state")


@pytest.fixture
async def js(settings: Settings) -> AsyncIterator:
    """A JetStream context on the test NATS, with this test's streams and buckets created."""
    nc = await connect(settings, "test")
    js = nc.jetstream()
    await ensure_topology(js, settings)
    yield js
    await nc.close()
