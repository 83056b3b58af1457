"""Real servers for the tests: nats-server with JetStream, SeaweedFS S3, and an RTSP camera, each on
random loopback ports under a temporary directory, stopped at the end.

A test that uses one of these fixtures is marked `integration` by itself; a test that starts a server
in its own body carries the mark explicitly. `make test-unit` runs the rest (`-m "not integration"`).
"""

from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
from minio.deleteobjects import DeleteObject

from spectare.core.bus import connect, ensure_topology
from spectare.core.config import Settings
from spectare.core.store import s3_client
from spectare.local.servers import NatsServer, S3Credentials, SeaweedS3
from spectare.local.testcam import RtspTestCamera, make_test_clip

from .browser import browser, context, page, playwright  # noqa: F401 - the browser fixtures, for every test
from .helpers import settings_for
from .media import source_video

SERVER_FIXTURES = frozenset({"nats_server", "s3_server", "rtsp_camera"})


@pytest.fixture(scope="session", autouse=True)
def screenshots_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The web UI tests' screenshots go to <basetemp>/screenshots, printed at the end of the run."""
    from . import webstack
    webstack.SCREENSHOTS = tmp_path_factory.getbasetemp() / "screenshots"
    return webstack.SCREENSHOTS


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    from . import webstack
    if webstack.SCREENSHOTS is not None and webstack.SCREENSHOTS.is_dir():
        count = len(list(webstack.SCREENSHOTS.glob("*.png")))
        terminalreporter.write_line(f"web UI screenshots ({count}): {webstack.SCREENSHOTS}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    integration = pytest.mark.integration
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, pytest.TestReport,
                                                                                 pytest.TestReport]:
    """Keep each phase's report on the item (`item.rep_call`), so a fixture's teardown knows the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


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
def settings(nats_server: NatsServer, s3_server: SeaweedS3, tmp_path: Path) -> Iterator[Settings]:
    settings = settings_for(nats_server, s3_server, tmp_path / "state")
    yield settings
    remove_bucket(settings)


def remove_bucket(settings: Settings) -> None:
    """Delete the test's bucket: SeaweedFS gives every bucket volumes of its own from a fixed number of
    slots, so a long suite that keeps them all runs out ("no free volumes left") and S3 answers 500."""
    client = s3_client(settings.s3, timeout_s=10, retries=0)
    try:
        if not client.bucket_exists(settings.s3.bucket):
            return
        names = (DeleteObject(o.object_name) for o in client.list_objects(settings.s3.bucket, recursive=True))
        for _ in client.remove_objects(settings.s3.bucket, names):
            pass
        client.remove_bucket(settings.s3.bucket)
    except Exception:  # noqa: BLE001 - best effort: a test that broke S3 must not also fail its teardown
        pass


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
