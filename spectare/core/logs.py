"""Logging set-up shared by every service and the CLI: one line per event, secrets redacted."""

import logging
import sys

from spectare.core.redact import redact


class RedactingFilter(logging.Filter):
    """Scrubs URL passwords from every record, whatever the caller forgot to redact."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def setup_logging(level: str = "INFO", service: str = "spectare") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # nats-py and urllib3 log every reconnect attempt; Spectare reports those once itself.
    for noisy in ("nats", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


class LogOnce:
    """Logs the first occurrence of each kind of problem; later ones are only counted by the caller."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.seen: set[str] = set()

    def warning(self, kind: str, message: str, *args: object) -> None:
        if kind not in self.seen:
            self.seen.add(kind)
            self.logger.warning(message + " (further ones are counted, not logged)", *args)
