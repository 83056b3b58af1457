"""Keeps the stack's processes running: a process that dies is restarted at once, then with growing back-off
if it keeps dying. A restarted service keeps its worker identity (`service_identity`), so it takes its own
cameras back at once instead of waiting for their leases to expire."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


def service_identity(service: str, slot: int = 0) -> dict[str, str]:
    """The environment that gives instance `slot` of `service` a worker id that survives its restarts."""
    return {"SPECTARE_LEASES__WORKER_ID": f"{{host}}-{service}-{slot}"}


@dataclass(frozen=True)
class RestartPolicy:
    """Back-off before restart number n: none for the first (a process that ran well and died: every second
    it is down is lost video), then first, first*2, ... capped; reset after a healthy spell."""

    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    healthy_after_s: float = 60.0

    def delay(self, recent_failures: int) -> float:
        if recent_failures <= 1:
            return 0.0
        return min(self.first_delay_s * 2 ** (recent_failures - 2), self.max_delay_s)

    def failures_after(self, recent_failures: int, ran_for_s: float) -> int:
        """Failures to count for the next delay, given how long the process ran before it died."""
        return 1 if ran_for_s >= self.healthy_after_s else recent_failures + 1


@dataclass
class Supervised:
    name: str
    start: Callable[[], object]  # its answer, if any, is not used
    alive: Callable[[], bool]
    stop: Callable[[], None]
    describe_exit: Callable[[], str] = lambda: "exited"
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    restarts: int = field(default=0)


class Supervisor:
    """Starts things in order, restarts the dead ones from `poll()`, stops them in reverse order."""

    def __init__(self, policy: RestartPolicy = RestartPolicy(), clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self.children: list[Supervised] = []

    def start(self, child: Supervised) -> None:
        child.start()
        child.started_at = self.clock()
        self.children.append(child)

    def poll(self) -> None:
        now = self.clock()
        for child in self.children:
            if child.restart_at is None:
                if child.alive():
                    continue
                child.failures = self.policy.failures_after(child.failures, now - child.started_at)
                delay = self.policy.delay(child.failures)
                child.restart_at = now + delay
                log.warning("%s %s; restarting %s", child.name, child.describe_exit(),
                            f"in {delay:.0f}s" if delay else "now")
            if now >= child.restart_at:
                child.restart_at = None
                child.restarts += 1
                try:
                    child.start()
                except Exception as exc:  # counted as another failure on the next poll
                    log.error("%s failed to restart: %s", child.name, exc)
                child.started_at = self.clock()

    def stop_all(self) -> None:
        for child in reversed(self.children):
            try:
                child.stop()
            except Exception as exc:
                log.error("stopping %s: %s", child.name, exc)
        self.children.clear()
