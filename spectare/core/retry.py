"""Riding out outages of S3 or NATS: retry with capped exponential backoff, and say so once when a
dependency starts failing and once when it works again (not once per retry)."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from minio.error import S3Error

from spectare.core.backoff import Backoff

log = logging.getLogger(__name__)


def describe_error(exc: BaseException) -> str:
    """A short description of a remote failure (S3 code and message, or the exception's type and text)."""
    if isinstance(exc, S3Error):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Outage:
    """One line when a dependency starts failing, one when it works again."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.since: float | None = None
        self.failures = 0

    def failed(self, camera: str, exc: BaseException) -> None:
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            log.warning("%s failing (camera %s: %s); retrying until it works", self.what, camera, describe_error(exc))

    def ok(self) -> None:
        if self.since is not None:
            log.info("%s working again after %.1fs (%d failed attempts)", self.what,
                     time.monotonic() - self.since, self.failures)
            self.since, self.failures = None, 0


async def retry_until_done(attempt: Callable[[], Awaitable[Any]], outage: Outage, camera: str, backoff: Backoff,
                           on_failure: Callable[[], None] = lambda: None) -> Any:
    """Run `attempt` until it succeeds, pausing by `backoff` after each failure of the remote side."""
    while True:
        try:
            result = await attempt()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the remote side: S3Error, urllib3, OSError, nats errors
            outage.failed(camera, exc)
            on_failure()
            await asyncio.sleep(backoff.next_delay())
            continue
        outage.ok()
        return result
