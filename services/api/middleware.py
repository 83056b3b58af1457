"""Plain ASGI middleware (streaming responses pass through untouched): request metrics and the body size limit."""

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class ApiMetrics:
    """The API's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("spectare_api_requests", "HTTP requests answered, by route template and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("spectare_api_request_seconds", "time to answer an HTTP request (streams: their "
                                 "whole life)", ["method", "route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120))
        self.cameras = Gauge("spectare_cameras_registered", "cameras in the registry", registry=self.registry)
        self.workers_needed = Gauge(
            "spectare_ingest_workers_needed", "ingest workers the registered cameras need: ceil(cameras / "
            "max_cameras per worker); the scaling signal for the ingest Deployment", registry=self.registry)
        self.workers_live = Gauge("spectare_ingest_workers_live", "ingest workers announcing themselves",
                                  registry=self.registry)
        self.per_worker = Gauge("spectare_ingest_max_cameras_per_worker", "cameras one ingest worker takes at most",
                                registry=self.registry)
        self.camera_states = Gauge("spectare_cameras", "cameras by state, as of the last /stats",
                                   ["state"], registry=self.registry)


class MetricsMiddleware:
    def __init__(self, app: App, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_status(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"  # templates, never raw paths: bounded labels
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status[0])).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - started)


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413 before the app sees them (Content-Length checked first,
    then the bytes actually received, for chunked bodies)."""

    def __init__(self, app: App, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _problem(send, 400, "Content-Length is not a number")
                return
            if int(length) > self.max_bytes:
                await _problem(send, 413, f"request body of {int(length)} bytes is over the limit of "
                                          f"{self.max_bytes} bytes")
                return
        if length is None and b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.app(scope, receive, send)
            return
        body, messages = 0, []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += len(message.get("body", b""))
            if body > self.max_bytes:
                await _problem(send, 413, f"request body is over the limit of {self.max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break

        async def replay() -> dict[str, Any]:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


async def _problem(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
