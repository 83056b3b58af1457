"""The real stack the web UI's end-to-end tests drive: NATS, S3 and the ingest, segmenter, indexer and API
processes, recording RTSP test cameras (2 s chunks by default), with a read and an admin token made by the CLI.
The API serves the built page (web/dist, `make setup` builds it) at `/`.

Use it from a module-scoped fixture:

    @pytest.fixture(scope="module")
    async def ui(nats_server, s3_server, camera_clip, tmp_path_factory):
        async with web_stack(nats_server, s3_server, {"porch": camera_clip}, tmp_path_factory.mktemp("ui")) as stack:
            await stack.wait_for_chunks("porch", 3)
            yield stack

`screenshot(page, name)` saves a PNG under the test run's temporary folder, `screenshots/` (printed at the end of
the run), so a person can look at every view at both sizes.
"""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from playwright.async_api import Page

from spectare.core.bus import connect, ensure_topology
from spectare.core.leases import LeaseTable
from spectare.core.registry import CameraRegistry
from spectare.core.store import ensure_bucket
from spectare.local.process import free_port
from spectare.local.servers import NatsServer, SeaweedS3
from spectare.local.testcam import RtspTestCamera
from spectare.schemas import CameraConfig

from .helpers import ServiceProcess, api_answering, eventually, run_cli, settings_for

DESKTOP = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}
WEB_BUILD = Path(__file__).resolve().parents[1] / "web" / "dist" / "index.html"
SCREENSHOTS: Path | None = None  # set by conftest.py to <basetemp>/screenshots


class WebStack:
    def __init__(self, settings, root: Path, base_url: str, processes: dict[str, ServiceProcess]) -> None:
        self.settings, self.root, self.base_url, self.processes = settings, root, base_url, processes
        self.js = None
        self.registry: CameraRegistry | None = None
        self.read = self.admin = ""
        self.cameras: dict[str, RtspTestCamera] = {}
        self.clips: dict[str, Path] = {}
        self.started_at = time.time()

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=30,
                                 headers={"Authorization": f"Bearer {token or self.admin}"})

    async def get(self, path: str, **params) -> dict:
        async with self.client() as client:
            answer = await client.get(path, params=params)
            assert answer.status_code == 200, answer.text
            return answer.json()

    async def footage(self, camera: str, start: float | None = None) -> dict:
        return await self.get(f"/cameras/byname/{camera}/footage", start=start or self.started_at)

    async def wait_for_chunks(self, camera: str, count: int, timeout: float = 60) -> list[dict]:
        async def enough() -> list[dict] | None:
            chunks = (await self.footage(camera))["chunks"]
            return chunks if len(chunks) >= count else None
        return await eventually(enough, timeout, what=f"{count} chunks of {camera} indexed")

    def stop_camera(self, camera: str) -> None:
        """The camera goes away (its RTSP server stops); ingest reconnects, the index records a gap."""
        self.cameras[camera].stop()

    def start_camera(self, camera: str) -> None:
        """The camera comes back on the same port."""
        old = self.cameras[camera]
        self.cameras[camera] = RtspTestCamera({camera: self.clips[camera]}, self.root / f"camera-{camera}.log",
                                              port=old.port).start()

    def cli(self, *args: str):
        return run_cli(self.settings, *args)


def _token(settings, scope: str, name: str) -> str:
    done = run_cli(settings, "token", "create", "--scope", scope, "--name", name)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@asynccontextmanager
async def web_stack(nats_server: NatsServer, s3_server: SeaweedS3, clips: dict[str, Path], root: Path, *,
                    segment_seconds: int = 2, detect: bool = False, audio: str | None = None,
                    **api_env: str) -> AsyncIterator[WebStack]:
    """Starts the stack recording one RTSP test camera per entry of `clips` (camera name -> video file), each with
    an audio track when `audio` says which (`RtspTestCamera`: aac, pcmu, pcma)."""
    assert WEB_BUILD.is_file(), f"{WEB_BUILD} is missing: run `make setup` (it builds the web UI)"
    settings = settings_for(nats_server, s3_server, root / "state")
    ensure_bucket(settings.s3)
    nc = await connect(settings, "test-webui")
    js = nc.jetstream()
    await ensure_topology(js, settings)
    api_port = free_port()
    processes = {
        "api": ServiceProcess("api", settings, root / "api.log", SPECTARE_API__PORT=str(api_port),
                              SPECTARE_API__SSE_PING_S="0.5", **api_env),
        "ingest": ServiceProcess("ingest", settings, root / "ingest.log", SPECTARE_INGEST__RECONNECT_MAX_S="1"),
        "segmenter": ServiceProcess("segmenter", settings, root / "segmenter.log"),
        "indexer": ServiceProcess("indexer", settings, root / "indexer.log",
                                  SPECTARE_INDEXER__DATABASE=str(root / "index.duckdb"),
                                  SPECTARE_INDEXER__FLUSH_INTERVAL_S="0.1"),
    }
    stack = WebStack(settings, root, f"http://127.0.0.1:{api_port}", processes)
    stack.js, stack.clips = js, dict(clips)
    try:
        stack.registry = await CameraRegistry.open(js, settings)
        for name, clip in clips.items():
            stack.cameras[name] = RtspTestCamera({name: clip}, root / f"camera-{name}.log", audio=audio).start()
            await stack.registry.put(CameraConfig(name=name, url=stack.cameras[name].url(name),
                                                  segment_seconds=segment_seconds, detect=detect))
        for process in processes.values():
            process.start()
        await api_answering(processes["api"], stack.base_url)
        leases = LeaseTable(await js.key_value(settings.names.leases_bucket), "ingest", "test")

        async def all_claimed() -> bool:
            return set(clips) <= set(await leases.owners())
        await eventually(all_claimed, 30, what="ingest claiming every camera")
        stack.read = _token(settings, "read", "viewer")
        stack.admin = _token(settings, "admin", "operator")
        yield stack
    finally:
        for camera in stack.cameras.values():
            camera.stop()
        for process in processes.values():
            process.stop()
        await nc.close()
    for name in ("api", "segmenter", "indexer"):
        assert "Traceback" not in processes[name].log, processes[name].log[-3000:]


async def login(page: Page, stack: WebStack, token: str | None = None, path: str = "/") -> None:
    """Logs the page in through the API (not the login form) and opens `path` of the web UI."""
    await page.goto(stack.base_url + "/login")
    answer = await page.evaluate("""async (token) => {
        const r = await fetch("/auth/login", {method: "POST", headers: {"content-type": "application/json"},
                                              body: JSON.stringify({token})});
        return r.status;
    }""", token or stack.admin)
    assert answer == 200, answer
    await page.goto(stack.base_url + path)


async def screenshot(page: Page, name: str) -> Path:
    """Saves the page as `<name>.png` in the run's screenshots folder (full page) and returns the path."""
    assert SCREENSHOTS is not None, "conftest.py sets tests.webstack.SCREENSHOTS"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=path, full_page=True)
    return path
