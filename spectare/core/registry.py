"""The camera registry: CameraConfig per camera in the KV bucket `cameras`.

URLs are stored with their credentials (ingest needs them) and leave this module only through
`CameraConfig`; everything that prints one goes through `spectare.core.redact`.
"""

import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from spectare.core.bus import bucket_keys, open_bucket
from spectare.core.config import Settings
from spectare.core.errors import CameraExists, CameraNotFound, SchemaError
from spectare.core.redact import redact
from spectare.schemas import CameraConfig, camera_name

log = logging.getLogger(__name__)


def public_view(camera: CameraConfig) -> dict:
    """A camera as shown to people (CLI, HTTP API): everything but the URL's credentials, times in ISO 8601."""
    view = camera.model_dump(mode="json")
    view["url"] = redact(camera.url)
    for stamp in ("created_at", "updated_at"):
        view[stamp] = datetime.fromtimestamp(view[stamp], UTC).isoformat(timespec="seconds")
    return view


@dataclass(frozen=True)
class CameraChange:
    """One registry change seen by a watcher: `config` is None when the camera was removed; `at` is when the
    change was stored (Unix seconds), when the server says."""

    name: str
    config: CameraConfig | None
    revision: int
    at: float | None = None


class CameraRegistry:
    def __init__(self, kv: KeyValue, js: JetStreamContext, bucket: str) -> None:
        self.kv = kv
        self.js = js
        self.bucket = bucket

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings) -> "CameraRegistry":
        bucket = settings.names.cameras_bucket
        return cls(await open_bucket(js, settings, bucket), js, bucket)

    async def add(self, config: CameraConfig) -> CameraConfig:
        """Register a new camera; raise CameraExists if the name is taken."""
        now = time.time()
        config = config.model_copy(update={"created_at": now, "updated_at": now})
        try:
            await self.kv.create(config.name, config.encode())
        except KeyWrongLastSequenceError:
            raise CameraExists(f"camera {config.name!r} already exists; remove it first or pick another name") from None
        return config

    async def put(self, config: CameraConfig) -> CameraConfig:
        """Create or replace a camera (keeps its creation time)."""
        try:
            created = (await self.get(config.name)).created_at
        except CameraNotFound:
            created = time.time()
        config = config.model_copy(update={"created_at": created, "updated_at": time.time()})
        await self.kv.put(config.name, config.encode())
        return config

    async def get(self, name: str) -> CameraConfig:
        camera_name(name)
        try:
            entry = await self.kv.get(name)
        except KeyNotFoundError:
            raise CameraNotFound(
                f"no camera named {name!r}; `spectare camera list` shows the registered ones"
            ) from None
        return CameraConfig.decode(entry.value or b"")

    async def list(self) -> list[CameraConfig]:
        """Every registered camera, by name; an unreadable entry is logged and left out."""
        cameras = []
        for name in await bucket_keys(self.js, self.bucket):
            try:
                cameras.append(await self.get(name))
            except CameraNotFound:
                continue  # removed between keys() and get()
            except SchemaError as exc:
                log.warning("camera registry entry %r is unreadable, skipped: %s", name, exc)
        return cameras

    async def last_config(self, name: str) -> CameraConfig | None:
        """The last configuration the camera had, also after its removal (from the bucket's history, which a
        purge clears); None when there is none."""
        try:
            entries = await self.kv.history(name)
        except NoKeysError:
            return None
        for entry in reversed(entries):
            if entry.operation not in ("DEL", "PURGE") and entry.value:
                try:
                    return CameraConfig.decode(entry.value or b"")
                except SchemaError:
                    return None
        return None

    async def remove(self, name: str) -> None:
        await self.get(name)
        await self.kv.delete(name)

    async def watch(self) -> AsyncGenerator[CameraChange, None]:
        """Every camera as it is now, then every change, forever (for services that reconfigure live)."""
        watcher = await self.kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:  # end of the initial values
                    continue
                at = entry.created.timestamp() if entry.created is not None else None
                if entry.operation in ("DEL", "PURGE") or not entry.value:
                    yield CameraChange(entry.key, None, entry.revision, at)
                    continue
                try:
                    yield CameraChange(entry.key, CameraConfig.decode(entry.value), entry.revision, at)
                except SchemaError as exc:
                    log.warning("camera registry entry %r is unreadable, ignored: %s", entry.key, exc)
        finally:
            await watcher.stop()
