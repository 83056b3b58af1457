"""The API process: settings, one NATS connection, uvicorn on the same event loop, drain on the way out.

NATS unreachable or bad settings end it at start with one line and exit code 1 (like every service); once
running, the NATS client reconnects forever and endpoints answer 503 while NATS is away.
"""

import asyncio
import contextlib
import logging
import os
import sys

import uvicorn
from prometheus_client import REGISTRY

from spectare.core.bus import connect, ensure_topology
from spectare.core.config import Settings, ingest_max_cameras, load_settings
from spectare.core.errors import SpectareError
from spectare.core.logs import setup_logging
from spectare.core.metrics import start_metrics
from spectare.core.redact import redact

from .app import ApiState, create_app, refresh_scaling
from .live import websocket_protocol
from .middleware import ApiMetrics
from .settings import ApiSettings

log = logging.getLogger(__name__)
REFRESH_S = 15.0


def ingest_capacity(api: ApiSettings) -> int:
    """Cameras per ingest worker behind the scaling signal: [api] max_cameras_per_worker, else ingest's own
    max_cameras (`[ingest]` of the same config, read through the core: the API imports no other service)."""
    if api.max_cameras_per_worker is not None:
        return api.max_cameras_per_worker
    return ingest_max_cameras()


async def serve(settings: Settings, api: ApiSettings, capacity: int) -> None:
    nc = await connect(settings, "api")
    try:
        await ensure_topology(nc.jetstream(), settings)
        state = await ApiState.open(settings, api, nc, capacity)
        app = create_app(state)
        if settings.metrics_port:  # like every service: /metrics without a token on a port of its own as well
            REGISTRY.register(app.state.metrics.registry)
            start_metrics("api", settings.metrics_port, settings.metrics_host)
        config = uvicorn.Config(app, host=api.host, port=api.port, log_config=None, access_log=False,
                                lifespan="off", timeout_graceful_shutdown=5,
                                ws=websocket_protocol(api.live_socket_send_buffer_bytes),
                                ws_per_message_deflate=False)  # video does not compress; zlib on it cost CPU
        server = uvicorn.Server(config)
        log.info("api connected to %s; serving http://%s:%d (docs at /docs)", redact(settings.nats.url), api.host,
                 api.port)
        refresher = asyncio.create_task(_refresh(state, app.state.metrics))
        try:
            await server.serve()
        finally:
            refresher.cancel()
        if not server.started:
            raise SpectareError(f"cannot serve HTTP on {api.host}:{api.port} (in use, or not an address here)")
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), timeout=5)


async def _refresh(state: ApiState, metrics: ApiMetrics) -> None:
    """Keep the scaling gauges current for scrapes of the metrics port (the API's own /metrics refreshes them)."""
    while True:
        await refresh_scaling(state, metrics)
        await asyncio.sleep(REFRESH_S)


class WebSocketWireFilter(logging.Filter):
    """Drops the websockets library's DEBUG lines, which uvicorn routes to its own logger: they dump every
    handshake header (the Authorization token and the session cookie among them) and one line per frame (dozens a
    second per live viewer)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.DEBUG and record.name == "uvicorn.error"
                    and f"{os.sep}websockets{os.sep}" in record.pathname)


def main() -> None:
    try:
        settings = load_settings()
        api = ApiSettings.load()
        capacity = ingest_capacity(api)
    except SpectareError as exc:
        print(f"spectare-api: error: {redact(str(exc))}", file=sys.stderr)
        sys.exit(1)
    setup_logging(settings.log_level, "api")
    logging.getLogger("uvicorn.error").addFilter(WebSocketWireFilter())
    try:
        asyncio.run(serve(settings, api, capacity))
    except SpectareError as exc:
        log.error("%s", redact(str(exc)))
        sys.exit(1)
    except KeyboardInterrupt:
        pass
