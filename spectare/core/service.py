"""Process scaffolding every service shares: settings, logging, NATS, topology, signals, shutdown.

    def main() -> None:
        run_service("segmenter", lambda ctx: Segmenter(ctx).run())

A service body gets a ServiceContext and must return when `ctx.stop` is set. SIGINT/SIGTERM set
it; the connection is drained after the body returns. Problems a user can fix (unreachable NATS,
bad settings) end the process with one line and exit code 1.
"""

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from spectare.core.bus import connect, ensure_topology
from spectare.core.config import Settings, load_settings
from spectare.core.errors import SpectareError
from spectare.core.logs import setup_logging
from spectare.core.metrics import start_metrics
from spectare.core.redact import redact

log = logging.getLogger(__name__)

S = TypeVar("S")


@dataclass
class ServiceContext:
    name: str
    settings: Settings
    nc: NATS
    js: JetStreamContext
    stop: asyncio.Event


def run_section_service(name: str, load: Callable[[], S], body: Callable[[ServiceContext, S], Awaitable[None]]) -> None:
    """`run_service` for a service with its own settings section: `load()` (e.g. `SegmenterSettings.load`) runs
    first, and settings a user got wrong end the process with one line, like the shared ones."""
    try:
        section = load()
    except SpectareError as exc:
        _exit_with(name, exc)
    run_service(name, lambda ctx: body(ctx, section))


def _exit_with(name: str, exc: SpectareError) -> NoReturn:
    print(f"spectare-{name}: error: {redact(str(exc))}", file=sys.stderr)
    sys.exit(1)


def run_service(name: str, body: Callable[[ServiceContext], Awaitable[None]]) -> None:
    try:
        settings = load_settings()
    except SpectareError as exc:
        _exit_with(name, exc)
    setup_logging(settings.log_level, name)
    try:
        start_metrics(name, settings.metrics_port, settings.metrics_host)
    except OSError as exc:
        log.error("cannot serve metrics on port %d: %s", settings.metrics_port, exc.strerror or exc)
        sys.exit(1)
    try:
        asyncio.run(_serve(name, settings, body))
    except SpectareError as exc:
        log.error("%s", exc)
        sys.exit(1)


async def _serve(name: str, settings: Settings, body: Callable[[ServiceContext], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    nc = await connect(settings, name)
    try:
        js = nc.jetstream()
        await ensure_topology(js, settings)
        log.info("%s connected to %s", name, redact(settings.nats.url))
        await body(ServiceContext(name, settings, nc, js, stop))
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), timeout=5)
