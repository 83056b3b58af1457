"""`spectare up` as a user runs it: real processes, stopped and started again, killed, misused."""

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import pytest

from spectare.core.config import load_settings
from spectare.core.store import s3_client
from spectare.local.process import port_in_use

pytestmark = pytest.mark.integration  # every test here runs `spectare up` or its commands

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("SPECTARE_")}


class Up:
    """One `spectare up` subprocess in `cwd`, its output in a file."""

    started: list["Up"] = []  # killed after each test, whatever happened in it

    def __init__(self, cwd: Path, *args: str) -> None:
        Up.started.append(self)
        self.cwd = cwd
        self.output = cwd / f"up-{time.monotonic_ns()}.log"
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "spectare", "up", *args], cwd=cwd, env=CLEAN_ENV,
                                         stdout=out, stderr=subprocess.STDOUT)

    @property
    def text(self) -> str:
        return self.output.read_text()

    def wait_ready(self, timeout: float = 60) -> dict:
        stack_file = self.cwd / ".spectare" / "stack.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"spectare up exited early:\n{self.text}"
            if stack_file.exists() and "Spectare is up" in self.text:
                info = json.loads(stack_file.read_text())
                if info["pid"] == self.proc.pid:
                    return info
            time.sleep(0.1)
        raise AssertionError(f"spectare up not ready in {timeout}s:\n{self.text}")

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(30)


def spectare(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spectare", *args], cwd=cwd, env=CLEAN_ENV,
                          capture_output=True, text=True, timeout=60)


def ports_of(info: dict) -> list[int]:
    client = info["client"]
    return [int(client["nats"]["url"].rsplit(":", 1)[1]), int(client["s3"]["endpoint"].rsplit(":", 1)[1])]


def wait_closed(ports: list[int], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while any(port_in_use(p) for p in ports):
        assert time.monotonic() < deadline, f"ports {ports} still open"
        time.sleep(0.1)


def s3_of(cwd: Path):
    """The S3 client and bucket the stack in `cwd` hands to other commands."""
    os.chdir(cwd)  # settings find the running stack through ./.spectare
    settings = load_settings()
    return s3_client(settings.s3), settings.s3.bucket


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for var in [v for v in os.environ if v.startswith("SPECTARE_")]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    while Up.started:
        up = Up.started.pop()
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.wait(10)


def test_up_down_twice_keeps_data(workdir):
    first = Up(workdir)
    info = first.wait_ready()
    assert "NATS       nats://127.0.0.1:" in first.text and "state dir" in first.text
    assert spectare(workdir, "camera", "add", "kept", "rtsp://u:pw@192.0.2.1/x").returncode == 0
    client, bucket = s3_of(workdir)
    client.put_object(bucket, "footage/kept/probe.bin", io.BytesIO(b"still here"), 10)
    assert first.interrupt() == 0
    assert "stopped; data kept" in first.text
    assert not (workdir / ".spectare" / "stack.json").exists()
    wait_closed(ports_of(info))
    assert spectare(workdir, "status").returncode == 1, "status must fail with the stack down"

    token = Path(info["api"]["token_file"]).read_text()
    second = Up(workdir)
    info2 = second.wait_ready()
    assert ports_of(info2) == ports_of(info), "free ports of the last run are reused"
    assert info2["api"] == info["api"] and Path(info2["api"]["token_file"]).read_text() == token, (
        "the API keeps its port and its admin token")
    listed = spectare(workdir, "camera", "list", "--json")
    assert [c["name"] for c in json.loads(listed.stdout)] == ["kept"]
    # The indexer runs too, its catalogue kept in the state directory: it knows the camera.
    deadline = time.monotonic() + 30
    while True:
        indexed = spectare(workdir, "sql", "SELECT name FROM cameras", "--json")
        if indexed.returncode == 0 and json.loads(indexed.stdout)["rows"] == [["kept"]]:
            break
        assert time.monotonic() < deadline, f"the indexer does not answer: {indexed.stderr}"
        time.sleep(0.5)
    assert (workdir / ".spectare" / "index" / "spectare.duckdb").is_file()
    client, bucket = s3_of(workdir)
    assert client.get_object(bucket, "footage/kept/probe.bin").read() == b"still here"
    status = spectare(workdir, "status")
    assert status.returncode == 0 and status.stdout.count("ok ") == 2
    # A second `up` on the same state directory is refused while the first runs.
    clash = spectare(workdir, "up")
    assert clash.returncode == 1
    assert f"already running from {workdir / '.spectare'} (pid {second.proc.pid})" in clash.stderr
    down = spectare(workdir, "down")
    assert down.returncode == 0, down.stderr
    assert second.proc.wait(30) == 0
    wait_closed(ports_of(info2))


def test_killed_stack_leaves_nothing_running_and_restarts(workdir):
    first = Up(workdir)
    info = first.wait_ready()
    assert spectare(workdir, "camera", "add", "survivor", "rtsp://192.0.2.1/x").returncode == 0
    first.proc.kill()
    first.proc.wait()
    wait_closed(ports_of(info))  # children die with their parent
    assert (workdir / ".spectare" / "stack.json").exists(), "a killed run leaves its stale state behind"

    second = Up(workdir)
    second.wait_ready()
    assert "did not stop cleanly" in second.text
    listed = spectare(workdir, "camera", "list", "--json")
    assert [c["name"] for c in json.loads(listed.stdout)] == ["survivor"]
    assert second.interrupt() == 0


def test_taken_port_is_one_clear_error(workdir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = spectare(workdir, "up", "--nats-port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"spectare: error: port {port} for NATS is already taken on 127.0.0.1; choose another or stop its user"
    )
    assert "Traceback" not in result.stderr


def test_down_without_a_stack(workdir):
    result = spectare(workdir, "down")
    assert result.returncode == 1
    assert "no Spectare stack is running" in result.stderr


def test_demo_registers_a_real_camera(workdir):
    up = Up(workdir, "--demo")
    info = up.wait_ready()
    url = info["demo"]["url"]
    shown = json.loads(spectare(workdir, "camera", "show", "demo", "--json").stdout)
    assert shown["url"] == url
    with av.open(url, options={"rtsp_transport": "tcp"}, timeout=10) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.width) == ("h264", 540)
        frames = 0
        for packet in container.demux(stream):
            frames += len(packet.decode())
            if frames >= 10:
                break
    assert frames >= 10
    # The supervised ingest and segmenter record it: a chunk is listed and downloads as a playable MP4.
    deadline = time.monotonic() + 45
    chunks = []
    while not chunks and time.monotonic() < deadline:
        listed = spectare(workdir, "footage", "ls", "--camera", "demo", "--json")
        assert listed.returncode == 0, listed.stderr
        chunks = [item for item in json.loads(listed.stdout) if item["type"] == "chunk"]
        time.sleep(1)
    assert chunks, f"no chunk recorded:\n{up.text}"
    got = spectare(workdir, "footage", "get", chunks[0]["key"], "-o", str(workdir / "chunk.mp4"))
    assert got.returncode == 0, got.stderr
    with av.open(str(workdir / "chunk.mp4")) as container:
        decoded = sum(1 for _ in container.decode(video=0))
    assert decoded == chunks[0]["frames"] > 0
    # The HTTP API answers with the admin token `spectare up` left in the state dir (and printed nowhere).
    api = info["api"]
    assert f"API        {api['url']} (docs at /docs)" in up.text
    token_file = Path(api["token_file"])
    assert token_file.parent == workdir / ".spectare" and token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    assert token not in up.text
    # The web UI's address comes first, with a single-use login link whose code (in the fragment) is no token.
    lines = up.text.splitlines()
    at = lines.index("Spectare is up.")
    assert lines[at + 1] == f"  web UI     {api['url']}/"
    link = re.search(r"log in: (http://127\.0\.0\.1:\d+/login#code=(\S+))  \(one use, within 10 minutes\)",
                     lines[at + 2])
    assert link and link[1].startswith(api["url"]), lines[at + 2]
    code = link[2]
    stack_file = workdir / ".spectare" / "stack.json"
    assert code.startswith("spl_") and token.split("_", 2)[2] not in code and code not in stack_file.read_text()
    with httpx.Client(base_url=api["url"], timeout=10) as browser:
        assert browser.get("/").headers["content-type"].startswith("text/html")
        logged_in = browser.post("/auth/login", json={"code": code})
        assert logged_in.status_code == 200 and logged_in.json()["scope"] == "admin", logged_in.text
        assert browser.get("/tokens/me").json()["id"] == token.split("_")[1]  # the cookie is the admin token's
        assert httpx.post(api["url"] + "/auth/login", json={"code": code}, timeout=10).status_code == 401
    assert stack_file.stat().st_mode & 0o777 == 0o600
    with httpx.Client(base_url=api["url"], headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        stats = client.get("/stats").json()
        assert stats["cameras"]["recording"] == 1 and stats["per_camera"][0]["state"] == "recording", stats
        assert client.get("/cameras/byname/demo").json()["url"] == url
        assert client.get("/cameras/byname/demo/snapshot.jpg").headers["content-type"] == "image/jpeg"
    assert up.interrupt() == 0
