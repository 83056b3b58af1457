"""Helpers the tests share."""

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from spectare.core.config import Settings, load_settings
from spectare.core.config import settings_env as cli_env
from spectare.local.servers import NatsServer, SeaweedS3


def settings_for(nats: NatsServer, s3: SeaweedS3, state_dir: Path, **overrides) -> Settings:
    """Settings pointing at the test servers, with a fresh prefix so tests never share streams."""
    return load_settings(
        prefix=overrides.pop("prefix", "t" + secrets.token_hex(4)),
        state_dir=state_dir,
        nats={"url": nats.url},
        s3={"endpoint": s3.endpoint, "access_key": s3.credentials.access_key,
            "secret_key": SecretStr(s3.credentials.secret_key), "bucket": "b" + secrets.token_hex(6)},
        **overrides,
    )




def run_cli(settings: Settings, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    """`spectare ARGS...` as a user runs it, against the test servers."""
    return subprocess.run([sys.executable, "-m", "spectare", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **cli_env(settings), **env})


class ServiceProcess:
    """A Spectare service (`python -m spectare.<module>`) as a real subprocess against `settings`."""

    def __init__(self, module: str, settings: Settings, log_file: Path, **env: str) -> None:
        self.module = module
        self.log_file = log_file
        self.env = {**os.environ, **cli_env(settings), "SPECTARE_LOG_LEVEL": "DEBUG", **env}
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ServiceProcess":
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", f"spectare.{self.module}"], env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)
        return self

    @property
    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed."""
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode if self.proc else None


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """A process's /metrics: {(sample name, frozenset of label items): value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def metric(samples: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def api_answering(process: ServiceProcess, base_url: str, timeout: float = 30) -> None:
    """Wait until the API subprocess answers /healthz; fail with its log if it died."""
    import httpx

    async with httpx.AsyncClient(base_url=base_url, timeout=5) as probe:
        async def alive() -> bool:
            assert process.alive(), process.log[-3000:]
            try:
                return (await probe.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually(alive, timeout, what="the API answering /healthz")


async def eventually(check, timeout: float, interval: float = 0.2, what: str = "condition"):
    """Await `check()` (sync or async) until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(interval)
