"""Reachability checks of the servers Spectare depends on, for `spectare status` and services."""

import asyncio
from dataclasses import dataclass

from spectare.core.bus import connect
from spectare.core.config import Settings
from spectare.core.errors import SpectareError
from spectare.core.redact import redact
from spectare.core.store import endpoint_url, ensure_bucket


@dataclass(frozen=True)
class Check:
    name: str
    endpoint: str
    ok: bool
    detail: str


async def check_nats(settings: Settings) -> Check:
    endpoint = redact(settings.nats.url)
    try:
        nc = await connect(settings, "health")
    except SpectareError as exc:
        return Check("nats", endpoint, False, str(exc))
    try:
        info = await nc.jetstream().account_info()
        detail = f"JetStream: {info.streams} streams, {info.storage / 1e6:.1f} MB stored"
        return Check("nats", endpoint, True, detail)
    except Exception as exc:  # JetStream disabled or not permitted: reachable but not usable
        return Check("nats", endpoint, False, f"connected, but JetStream is not available: {exc}")
    finally:
        await nc.close()


async def check_s3(settings: Settings) -> Check:
    endpoint = endpoint_url(settings.s3)
    try:
        await asyncio.to_thread(ensure_bucket, settings.s3)
    except SpectareError as exc:
        return Check("s3", endpoint, False, str(exc))
    return Check("s3", endpoint, True, f"bucket {settings.s3.bucket} ready")


async def check_all(settings: Settings) -> list[Check]:
    return list(await asyncio.gather(check_nats(settings), check_s3(settings)))
