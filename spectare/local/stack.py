"""`spectare up`: the whole system on one machine, under one state directory.

Layout of the state directory (default `.spectare/`):
  nats/        nats-server config and JetStream file store; nats-server also listens for MQTT clients (home
               automation: events as JSON on `spectare/events/<camera>/<label>`) on a loopback port it prints
  s3/          SeaweedFS data and its identity file
  logs/        one log file per process
  credentials.json  S3 keys generated on the first run (mode 600)
  api-token    an admin token for the HTTP API, made on the first run (mode 600); `spectare token revoke` it
               and the next run makes a new one. Each run also prints a login link for the web UI: a single-use
               code for that token (10 minutes), in the URL's fragment, which the browser never sends to a server
  ports.json   the ports of the last run, reused when free so URLs stay the same
  stack.json   written while running: endpoints and credentials other commands read (mode 600)
  up.lock      held by the running `spectare up`; a stale one (killed run) is simply re-taken
"""

import asyncio
import fcntl
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from spectare.core.bus import connected, ensure_topology
from spectare.core.config import ASSETS_DIR, STACK_FILE, Settings, read_stack_file
from spectare.core.errors import StackError
from spectare.core.registry import CameraRegistry
from spectare.core.sessions import LOGIN_CODE_TTL_S, SessionStore
from spectare.core.store import endpoint_url, ensure_bucket
from spectare.core.tokens import TokenStore
from spectare.local.process import ManagedProcess, free_ports, port_in_use
from spectare.local.servers import NatsCluster, NatsServer, S3Credentials, SeaweedS3
from spectare.local.supervisor import Supervised, Supervisor, service_identity
from spectare.local.testcam import RtspTestCamera
from spectare.schemas import CameraConfig

log = logging.getLogger(__name__)

# Services `spectare up` runs, each as `python -m spectare.<name>`, in start order.
SERVICES: tuple[str, ...] = ("ingest", "segmenter", "detector", "indexer", "api")
# Processes of each service with `--cluster`: two of each that share work or answer alike, one indexer (DuckDB
# has one writer).
CLUSTER_INSTANCES = {"ingest": 2, "segmenter": 2, "detector": 2, "indexer": 1, "api": 2}
API_TOKEN_FILE = "api-token"

# The indexer's default `mqtt_prefix`: its MQTT bridge republishes events as JSON under this first topic level.
MQTT_PREFIX = "spectare"

DEMO_CAMERA = "demo"
DEMO_SOURCE = ASSETS_DIR / "demo" / "market-street.mp4"


@dataclass(frozen=True)
class StackOptions:
    state_dir: Path
    demo: bool = False
    nats_port: int | None = None
    s3_port: int | None = None
    camera_port: int | None = None
    cluster: int = 1  # nats-servers; more than one: clustered, R3 streams, CLUSTER_INSTANCES of each service


class StateLock:
    """An exclusive flock on `up.lock`: the kernel drops it when the holder dies, however it dies."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "up.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            running = read_stack_file(self.path.parent) or {}
            raise StackError(
                f"a Spectare stack is already running from {self.path.parent} (pid {running.get('pid', '?')}); "
                "stop it with Ctrl-C or `spectare down`"
            ) from None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class LocalStack:
    def __init__(self, options: StackOptions, settings: Settings) -> None:
        self.options = options
        self.state_dir = options.state_dir.resolve()
        self.settings = settings
        self.lock = StateLock(self.state_dir)
        self.supervisor = Supervisor()
        self.stopping = False
        self.login_link: str | None = None  # printed once by `spectare up`; never written to a file
        # What runs, by name (`nats-n0`, `seaweedfs`, `ingest-1`, ...): for tests and benchmarks that kill one.
        self.servers: dict[str, NatsServer | SeaweedS3 | RtspTestCamera] = {}
        self.processes: dict[str, ManagedProcess] = {}

    # -- start -------------------------------------------------------------------------------------
    def start(self) -> dict[str, Any]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        try:
            return self._start_locked()
        except BaseException:
            self.stop()
            raise

    def _start_locked(self) -> dict[str, Any]:
        stale = read_stack_file(self.state_dir)
        if stale:
            log.warning("state in %s is from a run that did not stop cleanly (pid %s); reusing its data",
                        self.state_dir, stale.get("pid"))
            (self.state_dir / STACK_FILE).unlink(missing_ok=True)
        previous = self._previous_ports()
        logs = self.state_dir / "logs"

        clustered = self.options.cluster > 1
        mqtt_port = previous.get("mqtt") or free_ports(1)[0]
        if clustered:  # fresh ports: a node's place in the cluster is its name, not its port
            made = NatsCluster(self.state_dir / "nats-cluster", logs, size=self.options.cluster, mqtt_port=mqtt_port)
            cluster: NatsCluster | None = made
            nodes = made.nodes
        else:
            cluster = None
            nodes = [NatsServer(self.state_dir / "nats", logs / "nats-server.log",
                                port=self.options.nats_port or previous.get("nats"), mqtt_port=mqtt_port)]
        creds = S3Credentials.load_or_create(self.state_dir / "credentials.json")
        s3 = SeaweedS3(self.state_dir / "s3", logs / "seaweedfs.log", creds,
                       port=self.options.s3_port or previous.get("s3"))
        for node in nodes:
            self._supervise_server(f"nats-{node.cluster.server_name}" if node.cluster else "nats-server", node)
        if cluster is not None:
            cluster.wait_for_jetstream()
        nats_url = cluster.url if cluster is not None else nodes[0].url
        self._supervise_server("seaweedfs", s3)
        replicas = min(3, self.options.cluster)
        self.settings = self.settings.model_copy(update={
            "nats": self.settings.nats.model_copy(update={"url": nats_url}),
            "streams": self.settings.streams.model_copy(update={"replicas": replicas}),
            "s3": self.settings.s3.model_copy(update={
                "endpoint": s3.endpoint, "access_key": creds.access_key,
                "secret_key": SecretStr(creds.secret_key), "secure": False,
            }),
        })
        ensure_bucket(self.settings.s3)
        asyncio.run(self._ensure_topology())

        ports: dict[str, Any] = {"nats": nodes[0].port, "s3": s3.port, "mqtt": mqtt_port}
        demo: dict[str, str] = {}
        if self.options.demo:
            camera = self._start_demo_camera(logs, self.options.camera_port or previous.get("camera"))
            ports["camera"] = camera.port
            demo = {"camera": DEMO_CAMERA, "url": camera.url(DEMO_CAMERA)}
            asyncio.run(self._register_demo(demo["url"]))
        instances = [(service, slot) for service in SERVICES
                     for slot in range(CLUSTER_INSTANCES[service] if clustered else 1)]
        names = [_instance(service, slot) for service, slot in instances]
        api_slots = [slot for service, slot in instances if service == "api"]
        fresh = iter(free_ports(len(instances) + len(api_slots)))
        metrics = {name: previous.get(f"metrics-{name}") or next(fresh) for name in names}
        ports.update({f"metrics-{name}": port for name, port in metrics.items()})
        for slot in api_slots:
            ports[_instance("api", slot)] = previous.get(_instance("api", slot)) or next(fresh)
        (self.state_dir / "ports.json").write_text(json.dumps(ports))
        token_file = asyncio.run(self._ensure_api_token())
        api_urls = [f"http://127.0.0.1:{ports[_instance('api', slot)]}" for slot in api_slots]
        web_url = api_urls[0]
        self.login_link = f"{web_url}/login#code={asyncio.run(self._login_code(token_file))}"

        for service, slot in instances:
            name = _instance(service, slot)
            extra = {"SPECTARE_API__PORT": str(ports[name]), "SPECTARE_API__HOST": "127.0.0.1"} if service == "api" \
                else {}
            self._supervise_service(service, slot, logs, metrics[name], extra)

        info = {
            "pid": os.getpid(),
            "started_at": time.time(),
            "state_dir": str(self.state_dir),
            "client": {
                "nats": {"url": nats_url},
                "streams": {"replicas": replicas},
                "s3": {"endpoint": s3.endpoint, "access_key": creds.access_key, "secret_key": creds.secret_key,
                       "bucket": self.settings.s3.bucket, "secure": False},
            },
            "mqtt": {"url": nodes[0].mqtt_url, "topics": f"{MQTT_PREFIX}/events/<camera>/<label>"},
            "services": names,
            "metrics": {name: f"http://127.0.0.1:{port}/metrics" for name, port in metrics.items()},
            "api": {"url": web_url, "token_file": str(token_file), "replicas": api_urls},
            "nats_nodes": [{"name": node.cluster.server_name if node.cluster else "nats-server", "url": node.url,
                            "monitor": f"http://127.0.0.1:{node.monitor_port}" if node.monitor_port else None}
                           for node in nodes],
            "web": {"url": f"{web_url}/"},
            "demo": demo,
            "logs": str(logs),
        }
        stack_file = self.state_dir / STACK_FILE
        stack_file.touch(mode=0o600)
        stack_file.write_text(json.dumps(info, indent=2))
        return info

    def _previous_ports(self) -> dict[str, int]:
        """Last run's ports, kept only where nobody listens now (so URLs survive a restart)."""
        try:
            ports = json.loads((self.state_dir / "ports.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return {name: port for name, port in ports.items() if isinstance(port, int) and not port_in_use(port)}

    def _supervise_server(self, name: str, server: NatsServer | SeaweedS3 | RtspTestCamera) -> None:
        self.servers[name] = server
        self.supervisor.start(Supervised(
            name=name, start=server.start, alive=server.alive, stop=server.stop,
            describe_exit=lambda: _exit_line(server.process),
        ))

    def _supervise_service(self, service: str, slot: int, logs: Path, metrics_port: int, env: dict[str, str]) -> None:
        name = _instance(service, slot)
        process = ManagedProcess(
            name, [sys.executable, "-m", f"spectare.{service}"], logs / f"{name}.log",
            env={"SPECTARE_STATE_DIR": str(self.state_dir), "SPECTARE_LOG_LEVEL": self.settings.log_level,
                 "SPECTARE_METRICS_PORT": str(metrics_port), "SPECTARE_METRICS_HOST": "127.0.0.1",
                 # Every process is told the whole cluster and the replica count at start, not only by the
                 # stack file written once all have started.
                 "SPECTARE_NATS__URL": self.settings.nats.url,
                 "SPECTARE_STREAMS__REPLICAS": str(self.settings.streams.replicas),
                 **service_identity(service, slot), **env},
        )
        self.processes[name] = process
        self.supervisor.start(Supervised(
            name=name, start=process.start, alive=process.alive, stop=process.stop,
            describe_exit=lambda: _exit_line(process),
        ))

    def _start_demo_camera(self, logs: Path, port: int | None) -> RtspTestCamera:
        if not DEMO_SOURCE.is_file():
            raise StackError(f"demo footage {DEMO_SOURCE} is missing; run `make setup`")
        camera = RtspTestCamera({DEMO_CAMERA: DEMO_SOURCE}, logs / "testcam.log", port=port)
        self._supervise_server("rtsp-test-camera", camera)
        return camera

    async def _ensure_topology(self) -> None:
        async with connected(self.settings, "up") as nc:
            await ensure_topology(nc.jetstream(), self.settings)

    async def _ensure_api_token(self) -> Path:
        """An admin token in `api-token` (mode 600), so `curl` works at once: made on the first run, made again
        when the file is gone or its token was revoked. Only the file holds the token; nothing prints it."""
        path = self.state_dir / API_TOKEN_FILE
        async with connected(self.settings, "up") as nc:
            tokens = await TokenStore.open(nc.jetstream(), self.settings)
            try:
                current = path.read_text().strip()
            except FileNotFoundError:
                current = ""
            if current and await tokens.verify(current) is not None:
                return path
            made = await tokens.create("admin", "spectare up (local stack)")
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(made.token + "\n")
        return path

    async def _login_code(self, token_file: Path) -> str:
        """A single-use login code for the token in `token_file` (the web UI's login link carries it)."""
        async with connected(self.settings, "up") as nc:
            js = nc.jetstream()
            tokens = await TokenStore.open(js, self.settings)
            token = await tokens.verify(token_file.read_text().strip())
            if token is None:
                raise StackError(f"the token in {token_file} is unknown; delete the file and run again")
            sessions = await SessionStore.open(js, self.settings, tokens)
            return await sessions.create_login_code(token)

    async def _register_demo(self, url: str) -> None:
        async with connected(self.settings, "up") as nc:
            registry = await CameraRegistry.open(nc.jetstream(), self.settings)
            await registry.put(CameraConfig(
                name=DEMO_CAMERA, url=url, friendly_name="Demo: Market Street, San Francisco (1906)",
            ))

    # -- run / stop ----------------------------------------------------------------------------------
    def run_forever(self) -> None:
        """Supervise until SIGINT/SIGTERM."""

        def request_stop(signum: int, _frame: object) -> None:
            self.stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        while not self.stopping:
            self.supervisor.poll()
            time.sleep(0.25)

    def stop(self) -> None:
        self.supervisor.stop_all()
        (self.state_dir / STACK_FILE).unlink(missing_ok=True)
        self.lock.release()


def _instance(service: str, slot: int) -> str:
    """A service process's name: the service itself for its first (or only) process, then `<service>-<slot>`."""
    return service if slot == 0 else f"{service}-{slot}"


def _exit_line(process: ManagedProcess | None) -> str:
    if process is None:
        return "is not running"
    return f"exited with code {process.returncode()} ({process.log_tail(2)})"


def describe(info: dict[str, Any], settings: Settings, login_link: str | None = None) -> str:
    """What `spectare up` prints once everything is running: the web UI first, with its single-use login link."""
    client = info["client"]
    lines = ["Spectare is up."]
    if info.get("web"):
        lines.append(f"  web UI     {info['web']['url']}")
        if login_link:
            lines.append(f"             log in: {login_link}  (one use, within {LOGIN_CODE_TTL_S / 60:.0f} minutes)")
    lines += [
        f"  NATS       {client['nats']['url']}"
        + (f"  ({len(info['nats_nodes'])} nodes, R{client['streams']['replicas']} streams)"
           if len(info.get("nats_nodes", [])) > 1 else ""),
        *([f"  MQTT       {info['mqtt']['url']}  events as JSON on {info['mqtt']['topics']} (Home Assistant)"]
          if info.get("mqtt") else []),
        f"  S3         {endpoint_url(settings.s3.model_copy(update={'endpoint': client['s3']['endpoint']}))}"
        f"  bucket {client['s3']['bucket']}  (keys in {info['state_dir']}/credentials.json)",
        f"  state dir  {info['state_dir']}",
        f"  logs       {info['logs']}",
    ]
    if info["services"]:
        lines.append(f"  services   {', '.join(info['services'])}")
    if info.get("metrics"):
        ports = ", ".join(f"{name} :{url.rsplit(':', 1)[1].split('/')[0]}" for name, url in info["metrics"].items())
        lines.append(f"  metrics    http://127.0.0.1:PORT/metrics  ({ports})")
    if info.get("api"):
        api = info["api"]
        lines.append(f"  API        {api['url']} (docs at /docs)  admin token in {api['token_file']}")
        if len(api.get("replicas", [])) > 1:
            lines.append(f"             replicas: {'  '.join(api['replicas'])}")
        lines.append(f"             curl -H \"Authorization: Bearer $(cat {api['token_file']})\" {api['url']}/stats")
    if info["demo"]:
        lines.append(f"  demo       camera {info['demo']['camera']!r} at {info['demo']['url']}")
    lines.append("Other `spectare` commands run in this directory find this stack. Stop with Ctrl-C.")
    return "\n".join(lines)


def stop_running(state_dir: Path, timeout: float = 30.0) -> int:
    """`spectare down`: SIGTERM the `spectare up` of this state dir and wait until it is gone."""
    info = read_stack_file(state_dir)
    if not info:
        raise StackError(f"no Spectare stack is running from {state_dir}")
    pid = int(info["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        (state_dir / STACK_FILE).unlink(missing_ok=True)
        raise StackError(f"the stack in {state_dir} (pid {pid}) is not running; removed its stale stack file") from None
    lock = StateLock(state_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            lock.acquire()  # free once the stack has stopped everything and exited
        except StackError:
            time.sleep(0.1)
            continue
        lock.release()
        return pid
    raise StackError(f"the stack (pid {pid}) did not stop within {timeout:.0f}s")

