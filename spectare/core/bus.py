"""The NATS connection every service and CLI command uses, and the JetStream topology it needs.

`connect` fails fast with one line naming the endpoint when NATS is unreachable at start; once
connected, the client reconnects forever (a service outlives NATS restarts). `ensure_topology`
creates or updates every stream and KV bucket idempotently, so any service may call it at start.
"""

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from spectare.core.backoff import Backoff
from spectare.core.config import Settings
from spectare.core.errors import UnreachableError
from spectare.core.redact import redact

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # a 4K keyframe fits; the local server's max_payload matches
MOTION_STATE_TTL_S = 600.0  # a camera silent this long starts afresh: its next keyframe passes the gate
TRACKER_STATE_TTL_S = 86_400.0  # a camera silent a day forgets its objects (the end timer ended them long before)
# Ingest rewrites each camera's status well within this; a dead worker's records age out (spectare.core.camerastatus).
CAMERA_STATUS_TTL_S = 120.0
LIVE_MARK_TTL_S = 30.0  # spectare.core.live: a live mark not put again within this no longer counts
SESSION_MAX_TTL_S = 7 * 86_400  # the longest browser session ([api] session_ttl_s); the bucket forgets older ones
# What JetStream's API answers while it cannot serve: no reply in time, no responder, 503 (no leader yet).
JETSTREAM_NOT_ANSWERING = (nats.errors.TimeoutError, nats.errors.NoRespondersError, ServiceUnavailableError)

T = TypeVar("T")


async def connect(settings: Settings, name: str) -> NATS:
    """Connect to NATS or raise UnreachableError naming the endpoint within nats.connect_timeout."""
    endpoint = redact(settings.nats.url)
    first_error: list[BaseException] = []
    client: list[NATS] = []

    async def on_error(exc: Exception) -> None:
        # The client retries forever; say once that it is struggling, not once per attempt. Before the
        # first connection the caller reports the failure itself, as one line.
        if not first_error:
            first_error.append(exc)
            if client:
                log.warning("NATS %s: %s", endpoint, exc or type(exc).__name__)

    async def on_disconnect() -> None:
        if client and not (client[0].is_closed or client[0].is_draining):  # not our own close()
            log.warning("NATS %s: disconnected, reconnecting", endpoint)

    async def on_reconnect() -> None:
        first_error.clear()
        log.info("NATS %s: reconnected", endpoint)

    options: dict = {
        "servers": settings.nats.servers,
        "name": f"spectare-{name}",
        "connect_timeout": min(settings.nats.connect_timeout, 2.0),
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 1.0,
        "error_cb": on_error,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
    }
    if settings.nats.user:
        options["user"] = settings.nats.user
    if settings.nats.password:
        options["password"] = settings.nats.password.get_secret_value()
    if settings.nats.token:
        options["token"] = settings.nats.token.get_secret_value()
    if settings.nats.creds_file:
        options["user_credentials"] = str(settings.nats.creds_file)
    try:
        nc = await asyncio.wait_for(nats.connect(**options), timeout=settings.nats.connect_timeout)
        client.append(nc)
        return nc
    except (TimeoutError, OSError, nats.errors.Error) as exc:
        cause = first_error[0] if first_error else exc
        detail = str(cause) or type(cause).__name__
        raise UnreachableError(f"NATS at {endpoint} is unreachable: {detail}") from None


@contextlib.asynccontextmanager
async def connected(settings: Settings, name: str) -> AsyncIterator[NATS]:
    """`async with connected(settings, "cli") as nc:` drains the connection on the way out."""
    nc = await connect(settings, name)
    try:
        yield nc
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(nc.drain(), timeout=5)


def stream_configs(settings: Settings) -> list[StreamConfig]:
    """The four streams of DESIGN section 2, from settings."""
    names, limits = settings.names, settings.streams
    common = StreamConfig(
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        num_replicas=limits.replicas,
        max_msg_size=MAX_MESSAGE_BYTES,
        duplicate_window=120.0,
    )
    return [
        dataclasses.replace(
            common,
            name=names.media_stream,
            subjects=[names.info("*"), names.packets("*")],
            max_age=float(limits.media_max_age_s),
            description="every encoded packet and stream info, per camera: the recording buffer",
        ),
        dataclasses.replace(
            common,
            name=names.keyframes_stream,
            subjects=[names.keyframes("*")],
            max_age=float(limits.keyframes_max_age_s),
            max_msgs_per_subject=64,
            description="self-contained keyframes for detectors",
        ),
        dataclasses.replace(
            common,
            name=names.footage_stream,
            subjects=[names.footage("*")],
            description="every stored chunk and gap: the log the index is rebuilt from",
        ),
        dataclasses.replace(
            common,
            name=names.detections_stream,
            subjects=[names.detections("*", "*")],
            max_age=float(limits.detections_max_age_s),
            description="detections, per camera and label: every finding on every keyframe",
        ),
        dataclasses.replace(
            common,
            name=names.events_stream,
            subjects=[names.events("*", "*")],
            max_age=float(limits.detections_max_age_s),
            description="tracked-object events (new, update, end), per camera and label: what alerts subscribe to",
        ),
    ]


def kv_configs(settings: Settings) -> list[KeyValueConfig]:
    names = settings.names
    return [
        KeyValueConfig(
            bucket=names.cameras_bucket,
            description="camera registry: name -> CameraConfig",
            history=5,
            storage=StorageType.FILE,
            replicas=settings.streams.replicas,
        ),
        KeyValueConfig(
            bucket=names.leases_bucket,
            description="camera -> worker assignment; an unrenewed lease expires",
            history=1,
            ttl=settings.leases.ttl_s,  # a dead worker's cameras move within this plus one claim round
            storage=StorageType.FILE,
            replicas=settings.streams.replicas,
        ),
        KeyValueConfig(
            bucket=names.motion_bucket,
            description="camera -> the motion gate's picture of its last keyframe, shared by detector replicas",
            history=1,
            ttl=MOTION_STATE_TTL_S,
            storage=StorageType.FILE,
            replicas=settings.streams.replicas,
        ),
        KeyValueConfig(
            bucket=names.tracks_bucket,
            description="camera -> TrackerState: the objects the detector follows, shared by its replicas",
            history=1,
            ttl=TRACKER_STATE_TTL_S,
            storage=StorageType.FILE,  # a restart continues every object instead of starting it over as new
            replicas=settings.streams.replicas,
        ),
        KeyValueConfig(
            bucket=names.status_bucket,
            description="camera -> CameraStatus: what the ingest worker holding it says (streaming, or why not)",
            history=1,
            ttl=CAMERA_STATUS_TTL_S,
            storage=StorageType.MEMORY,  # rewritten by ingest while it holds the camera: nothing to keep
            replicas=settings.streams.replicas,
        ),
        KeyValueConfig(
            bucket=names.tokens_bucket,
            description="API tokens: id -> ApiToken (scope and a SHA-256 of the secret, never the secret)",
            history=1,
            storage=StorageType.FILE,
            replicas=settings.streams.replicas,
        ),
        KeyValueConfig(
            bucket=names.sessions_bucket,
            description="browser sessions: id -> ApiSession (its token, expiry and a SHA-256 of the cookie)",
            history=1,
            ttl=SESSION_MAX_TTL_S,
            storage=StorageType.FILE,
            replicas=settings.streams.replicas,
        ),
        KeyValueConfig(
            bucket=names.live_bucket,
            description="cameras watched live: <camera>.<API process> -> empty; ingest sends their packets sooner",
            history=1,
            ttl=LIVE_MARK_TTL_S,
            storage=StorageType.MEMORY,  # nothing to keep across a restart: the API puts its marks again
            replicas=settings.streams.replicas,
        ),
    ]


async def patiently(settings: Settings, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt` (idempotent JetStream requests), again while JetStream does not answer, for up to
    `[nats] jetstream_patience_s`: a cluster that lost a node answers nothing until it has elected a new
    leader, and a service starting meanwhile must wait for it, not die. One line when it starts waiting."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.nats.jetstream_patience_s
    pause = Backoff(0.25, 2.0)
    while True:
        try:
            return await attempt()
        except JETSTREAM_NOT_ANSWERING as exc:
            detail = str(exc) or type(exc).__name__
            if loop.time() >= deadline:
                raise UnreachableError(
                    f"JetStream at {redact(settings.nats.url)} did not answer {what} within "
                    f"{settings.nats.jetstream_patience_s:g}s ({detail}); is a majority of the NATS cluster up?"
                ) from None
            if pause.attempts == 0:
                log.warning("JetStream does not answer %s (%s); waiting up to %gs for it (a cluster electing a "
                            "leader)", what, detail, settings.nats.jetstream_patience_s)
            await asyncio.sleep(pause.next_delay())


async def ensure_topology(js: JetStreamContext, settings: Settings) -> None:
    """Create every stream and KV bucket, or update it to the wanted config. Safe to run concurrently, and
    waits for a JetStream that does not answer yet (`patiently`)."""
    await patiently(settings, "the topology check", lambda: _ensure_topology(js, settings))


async def _ensure_topology(js: JetStreamContext, settings: Settings) -> None:
    for config in stream_configs(settings):
        try:
            await js.stream_info(config.name or "")
        except NotFoundError:
            try:
                await js.add_stream(config)
                continue
            except nats.js.errors.BadRequestError:
                pass  # created by a concurrent caller in between: update it below
        await js.update_stream(config)
    for kv in kv_configs(settings):
        try:
            bucket = await js.key_value(kv.bucket)
        except BucketNotFoundError:
            await js.create_key_value(kv)
            continue
        await _update_ttl(js, kv, (await bucket.status()).ttl)


async def _update_ttl(js: JetStreamContext, kv: KeyValueConfig, current: float | None) -> None:
    """A bucket made with another TTL (an older default, or `[leases] ttl_s` changed) gets the wanted one: the
    TTL is the bucket stream's max_age, and its duplicate window may not exceed it (nats-py's rule at creation)."""
    wanted = kv.ttl or 0.0
    if abs((current or 0.0) - wanted) < 1e-3:
        return
    info = await js.stream_info(f"KV_{kv.bucket}")
    await js.update_stream(dataclasses.replace(info.config, max_age=wanted,
                                               duplicate_window=min(wanted, 120.0) if wanted else 120.0))
    log.info("bucket %s: TTL %.1fs -> %.1fs", kv.bucket, current or 0.0, wanted)


async def open_bucket(js: JetStreamContext, settings: Settings, bucket: str) -> KeyValue:
    """A KV bucket of the topology; on a fresh NATS no service has prepared yet, the topology is created first
    rather than failing. Waits for a JetStream that does not answer yet (`patiently`)."""
    try:
        return await patiently(settings, f"opening bucket {bucket}", lambda: js.key_value(bucket))
    except BucketNotFoundError:
        await ensure_topology(js, settings)
        return await patiently(settings, f"opening bucket {bucket}", lambda: js.key_value(bucket))


async def bucket_keys(js: JetStreamContext, bucket: str) -> list[str]:
    """Every key a KV bucket has a message for (a key whose last message deletes it is included: callers
    `get` each key and skip those). Read from the bucket stream's subject state, which the server answers
    at once and completely; nats-py's `KeyValue.keys()` can come back empty right after writes (its watcher
    may decide there is nothing pending before the server reports the entries)."""
    prefix = f"$KV.{bucket}."
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"{prefix}>")
    return sorted(subject.removeprefix(prefix) for subject in (info.state.subjects or {}))
