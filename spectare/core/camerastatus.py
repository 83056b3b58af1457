"""The `camera_status` KV bucket: what the ingest worker holding each camera says about it (`CameraStatus`).

Ingest writes a camera's record on every state change and again every `CAMERA_STATUS_TTL_S / 4` while the state
lasts; the bucket forgets a record after `CAMERA_STATUS_TTL_S`, so a dead worker's records age out. Readers (the
API's /stats, `spectare camera list`) take a record only from the worker that holds the camera's lease now, or,
when nobody holds it, the last record left (`current_status`).
"""

import asyncio
import logging

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from spectare.core.bus import bucket_keys, open_bucket
from spectare.core.config import Settings
from spectare.core.errors import SchemaError
from spectare.schemas import CameraStatus

log = logging.getLogger(__name__)


def current_status(record: CameraStatus | None, lease_owner: str | None) -> CameraStatus | None:
    """The record a reader shows: the lease owner's; while no worker holds the camera, whatever was said last
    (e.g. `stopped`); None when the owner has not written yet (the record is a previous owner's)."""
    if record is None or (lease_owner is not None and record.worker != lease_owner):
        return None
    return record


class CameraStatusBoard:
    def __init__(self, kv: KeyValue, js: JetStreamContext, bucket: str) -> None:
        self.kv, self.js, self.bucket = kv, js, bucket

    @classmethod
    async def open(cls, js: JetStreamContext, settings: Settings) -> "CameraStatusBoard":
        bucket = settings.names.status_bucket
        return cls(await open_bucket(js, settings, bucket), js, bucket)

    async def put(self, status: CameraStatus) -> int:
        """Write a camera's record; its revision."""
        return await self.kv.put(status.camera, status.encode())

    async def replace(self, status: CameraStatus, revision: int) -> bool:
        """Write a camera's record only if it is still at `revision` (nobody else wrote since); whether it was."""
        try:
            await self.kv.update(status.camera, status.encode(), last=revision)
        except (KeyWrongLastSequenceError, KeyNotFoundError):
            return False
        return True

    async def get(self, camera: str) -> CameraStatus | None:
        try:
            entry = await self.kv.get(camera)
        except KeyNotFoundError:
            return None
        return self._decode(camera, entry.value)

    async def all(self) -> dict[str, CameraStatus]:
        """camera -> its record, for every camera with one."""
        names = await bucket_keys(self.js, self.bucket)
        found = await asyncio.gather(*(self.get(name) for name in names))
        return {name: status for name, status in zip(names, found, strict=True) if status is not None}

    @staticmethod
    def _decode(camera: str, value: bytes | None) -> CameraStatus | None:
        if not value:
            return None  # deleted
        try:
            return CameraStatus.decode(value)
        except SchemaError as exc:  # e.g. written by a newer Spectare: skip it, say so
            log.warning("camera status of %s unreadable: %s", camera, exc)
            return None
