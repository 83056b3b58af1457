"""What every router reaches through a dependency: the open `ApiState` (`Depends(get_state)`, or the `State`
annotation) and the app's metrics (`Metrics`). `create_app` puts both on `app.state`; routers never close over
them, so a router module is importable on its own and any app that holds a state can include it."""

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from spectare.core.bus import open_bucket
from spectare.core.config import Settings
from spectare.core.indexclient import IndexClient
from spectare.core.registry import CameraRegistry
from spectare.core.sessions import SessionStore
from spectare.core.tokens import TokenStore

from .middleware import ApiMetrics
from .settings import ApiSettings


@dataclass
class ApiState:
    settings: Settings
    api: ApiSettings
    nc: NATS
    js: JetStreamContext
    registry: CameraRegistry
    tokens: TokenStore
    leases: KeyValue
    per_worker: int
    clip_slots: asyncio.Semaphore
    sessions: SessionStore

    @classmethod
    async def open(cls, settings: Settings, api: ApiSettings, nc: NATS, per_worker: int) -> "ApiState":
        js = nc.jetstream()
        registry, tokens = await CameraRegistry.open(js, settings), await TokenStore.open(js, settings)
        leases = await open_bucket(js, settings, settings.names.leases_bucket)
        sessions = await SessionStore.open(js, settings, tokens)
        return cls(settings, api, nc, js, registry, tokens, leases, per_worker, asyncio.Semaphore(api.concurrent_clips),
                   sessions)

    def index(self, timeout_s: float | None = None) -> IndexClient:
        return IndexClient(self.nc, self.settings, timeout_s=timeout_s or self.api.index_timeout_s)


def get_state(request: Request) -> ApiState:
    """The app's ApiState (a dependency: `state: State`)."""
    state: ApiState = request.app.state.api
    return state


def get_metrics(request: Request) -> ApiMetrics:
    """The app's ApiMetrics (a dependency: `metrics: Metrics`)."""
    metrics: ApiMetrics = request.app.state.metrics
    return metrics


State = Annotated[ApiState, Depends(get_state)]
Metrics = Annotated[ApiMetrics, Depends(get_metrics)]
