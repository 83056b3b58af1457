"""Exponential back-off with jitter, for reconnects and retries."""

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    first_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.2  # +/- this fraction, so many cameras failing together do not retry in step
    attempts: int = field(default=0, init=False)

    def next_delay(self) -> float:
        delay = min(self.first_s * 2**self.attempts, self.max_s)
        self.attempts += 1
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        self.attempts = 0
