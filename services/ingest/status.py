"""One camera's `CameraStatus` in the `camera_status` bucket, kept by the ingest task reading the camera.

`transition` decides the next record (pure); `StatusReporter` writes it from a task of its own, so a slow or
absent NATS never holds up reading the camera: the latest record wins, written at most every `MIN_WRITE_S` (a
camera refusing every half second costs one write per interval, not one per attempt) and again every `REFRESH_S`
while nothing changes, well inside the bucket's TTL.
"""

import asyncio
import contextlib
import logging
import time

from spectare.core.bus import CAMERA_STATUS_TTL_S
from spectare.core.camerastatus import CameraStatusBoard
from spectare.core.config import Settings
from spectare.core.redact import redact
from spectare.schemas import CameraState, CameraStatus, ErrorKind
from spectare.schemas.camerastatus import MAX_ERROR_CHARS

log = logging.getLogger(__name__)

MIN_WRITE_S = 2.0
REFRESH_S = CAMERA_STATUS_TTL_S / 4
STOP_WRITE_TIMEOUT_S = 2.0


def transition(current: CameraStatus | None, camera: str, worker: str, state: CameraState, now: float,
               error: str | None = None, kind: ErrorKind | None = None, session: str | None = None) -> CameraStatus:
    """The record after an event: `since` moves only when the state changes; `attempts` counts failures in a row
    (kept while retrying, 0 once streaming); only `retrying` carries an error."""
    changed = current is None or current.state != state
    attempts = (current.attempts if current else 0) + 1 if state == "retrying" else 0
    failing = state == "retrying"
    text = redact(error)[:MAX_ERROR_CHARS] if failing and error else None
    return CameraStatus(camera=camera, worker=worker, state=state,
                        since=now if changed or current is None else current.since, attempts=attempts,
                        error_kind=(kind or "other") if failing else None, error=text,
                        session=session if state == "streaming" else None, updated_at=now)


class StatusReporter:
    def __init__(self, js, settings: Settings, camera: str, worker: str) -> None:
        self.js, self.settings = js, settings
        self.camera, self.worker = camera, worker
        self.record: CameraStatus | None = None
        self._revision: int | None = None
        self._board: CameraStatusBoard | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._complained = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._write_loop(), name=f"status:{self.camera}")

    def connecting(self) -> None:
        self._set("connecting")

    def streaming(self, session: str) -> None:
        self._set("streaming", session=session)

    def failed(self, error: str, kind: ErrorKind) -> None:
        self._set("retrying", error=error, kind=kind)

    async def stop(self) -> None:
        """Stop writing and say `stopped`, unless another worker wrote the record since (it holds the camera now)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._board is None or self._revision is None:
            return
        stopped = transition(self.record, self.camera, self.worker, "stopped", time.time())
        with contextlib.suppress(Exception):  # best effort on the way out: the TTL cleans up otherwise
            await asyncio.wait_for(self._board.replace(stopped, self._revision), STOP_WRITE_TIMEOUT_S)

    def _set(self, state: CameraState, error: str | None = None, kind: ErrorKind | None = None,
             session: str | None = None) -> None:
        self.record = transition(self.record, self.camera, self.worker, state, time.time(), error, kind, session)
        self._changed.set()

    async def _write_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), REFRESH_S)
            self._changed.clear()
            if self.record is not None:  # the latest, changed or not: a refresh keeps it inside the bucket's TTL
                await self._write(self.record.model_copy(update={"updated_at": time.time()}))
            await asyncio.sleep(MIN_WRITE_S)

    async def _write(self, record: CameraStatus) -> None:
        try:
            if self._board is None:
                self._board = await CameraStatusBoard.open(self.js, self.settings)
            self._revision = await self._board.put(record)
            self._complained = False
        except Exception as exc:  # NATS away: the next change or refresh tries again
            if not self._complained:
                self._complained = True
                log.warning("camera %s: cannot write its status: %s", self.camera, exc or type(exc).__name__)
