"""Ordered, bounded JetStream publishing for one camera.

Messages go out asynchronously, up to a cap of messages and bytes awaiting their acknowledgement;
acknowledgements are awaited in order, each with a timeout (nats-py can leave an ack future
unresolved forever, DESIGN section 5). When one fails, every unacknowledged message is sent again
in order, one at a time, until acknowledged or the deadline passes: `Nats-Msg-Id` makes the
repeats harmless, as JetStream drops what it already stored. A failure is acted on before the next
message goes out, not only when the window is full: while a NATS cluster elects a stream's leader every
publish is refused, and a message sent once there is a leader again must not be stored ahead of the
refused ones (a reader takes packets that come after later ones for lost).
"""

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from spectare.core.backoff import Backoff

log = logging.getLogger(__name__)


class PublishFailed(Exception):
    """A message could not be stored within the deadline; the session must end."""


@dataclass
class _Pending:
    subject: str
    payload: bytes
    msg_id: str
    future: asyncio.Future | None


class OrderedPublisher:
    def __init__(self, js: JetStreamContext, max_msgs: int, max_bytes: int, ack_timeout_s: float,
                 deadline_s: float) -> None:
        self.js = js
        self.max_msgs = max_msgs
        self.max_bytes = max_bytes
        self.ack_timeout_s = ack_timeout_s
        self.deadline_s = deadline_s
        self.window: deque[_Pending] = deque()
        self.bytes_in_flight = 0
        self.published = 0
        self.retries = 0
        self.failed = False  # a message in the window was refused: resend the window before sending more

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        if self.failed and self.window:
            await self._resend_window()
        while self.window and (
            len(self.window) >= self.max_msgs or self.bytes_in_flight + len(payload) > self.max_bytes
        ):
            await self._settle_oldest()
        headers = {"Nats-Msg-Id": msg_id}
        future: asyncio.Future | None = None
        try:
            future = await self.js.publish_async(subject, payload, headers=headers, wait_stall=self.ack_timeout_s)
        except (NatsError, TimeoutError, OSError):
            self.failed = True  # resent in order before the next message
        else:
            future.add_done_callback(self._on_answer)
        self.window.append(_Pending(subject, payload, msg_id, future))
        self.bytes_in_flight += len(payload)

    async def flush(self) -> None:
        """Wait until everything published so far is acknowledged."""
        while self.window:
            await self._settle_oldest()

    def abandon(self) -> None:
        """Forget unacknowledged messages (the session is over); cancel their futures."""
        for pending in self.window:
            if pending.future is not None:
                pending.future.cancel()
        self.window.clear()
        self.bytes_in_flight = 0
        self.failed = False

    def _on_answer(self, future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None:  # refused (cancelled: by us, handled)
            self.failed = True

    async def _settle_oldest(self) -> None:
        pending = self.window[0]
        if not await self._acked(pending):
            await self._resend_window()
            return
        self.window.popleft()
        self.bytes_in_flight -= len(pending.payload)
        self.published += 1

    async def _acked(self, pending: _Pending) -> bool:
        if pending.future is None:
            return False
        if pending.future.done():  # the usual case: acked long ago; skip the timeout machinery
            return not pending.future.cancelled() and pending.future.exception() is None
        try:
            await asyncio.wait_for(pending.future, self.ack_timeout_s)  # cancels the future on timeout
            return True
        except (TimeoutError, NatsError, asyncio.CancelledError, OSError) as exc:
            if isinstance(exc, asyncio.CancelledError) and _cancelling():
                raise
            return False

    async def _resend_window(self) -> None:
        log.warning("JetStream did not acknowledge %s; resending %d message(s) in order",
                    self.window[0].msg_id, len(self.window))
        for pending in self.window:
            if pending.future is not None and not pending.future.done():
                pending.future.cancel()
        deadline = time.monotonic() + self.deadline_s
        backoff = Backoff(first_s=0.2, max_s=5.0)
        while self.window:
            pending = self.window[0]
            try:
                await self.js.publish(pending.subject, pending.payload, timeout=self.ack_timeout_s,
                                      headers={"Nats-Msg-Id": pending.msg_id})
            except (NatsError, TimeoutError, OSError) as exc:
                self.retries += 1
                if time.monotonic() > deadline:
                    raise PublishFailed(f"{pending.msg_id} not stored after {self.deadline_s:.0f}s: {exc}") from None
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            self.window.popleft()
            self.bytes_in_flight -= len(pending.payload)
            self.published += 1
        self.failed = False


def _cancelling() -> bool:
    """Whether the running task itself is being cancelled (not just the awaited ack future)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
