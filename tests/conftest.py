"""Real servers for the tests: nats-server with JetStream, SeaweedFS S3, and an RTSP camera, each on
random loopback ports under a temporary directory, stopped at the end."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from spectare.core.bus import connect, ensure_topology
from spectare.core.config import Settings
from spectare.local.servers import NatsServer, S3Credentials, SeaweedS3
from spectare.local.testcam import RtspTestCamera, make_test_clip

from .helpers import settings_for
from .media import source_video


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


@pytest.fixture(scope="session")
def camera_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real-footage H.264 clip shaped like a small camera: 640x360, 15 fps, 1 s GOP, 20 s (looped)."""
    return make_test_clip(source_video(), tmp_path_factory.mktemp("clips") / "cam.mp4",
                          width=640, height=360, fps=15, gop_seconds=1, seconds=20)


@pytest.fixture(scope="session")
def rtsp_camera(camera_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtspTestCamera]:
    """A real RTSP server with mounts cam1..cam3 (same footage, each client served from its start)."""
    camera = RtspTestCamera({f"cam{i}": camera_clip for i in (1, 2, 3)},
                            tmp_path_factory.mktemp("testcam") / "testcam.log")
    camera.start()
    yield camera
    camera.stop()
