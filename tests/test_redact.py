"""Credentials never leave in output: the redaction rule, and the log filter that applies it."""

import logging

import pytest

from spectare.core.logs import RedactingFilter
from spectare.core.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://user:secret@192.0.2.1:554/stream1", "rtsp://user:***@192.0.2.1:554/stream1"),
        ("rtsp://admin:p%40ss@cam/", "rtsp://admin:***@cam/"),
        ("rtsp://:only-pass@cam/x", "rtsp://:***@cam/x"),
        ("rtsp://user@cam/x", "rtsp://user@cam/x"),
        ("rtsp://cam.local/x", "rtsp://cam.local/x"),
        ("failed: rtsp://a:b@h/1 and rtsp://c:d@h/2", "failed: rtsp://a:***@h/1 and rtsp://c:***@h/2"),
        ("rtsp://h/cam?user=admin&password=hunter2&channel=1", "rtsp://h/cam?user=admin&password=***&channel=1"),
        ("http://h/snap.jpg?token=abc", "http://h/snap.jpg?token=***"),
        ("nats://svc:natspass@nats:4222", "nats://svc:***@nats:4222"),
        ("no url here", "no url here"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def test_log_filter_redacts_arguments_and_tracebacks(caplog):
    logger = logging.getLogger("test.redact")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="test.redact"):
        logger.info("opening %s", "rtsp://u:topsecret@cam/1")
        try:
            raise OSError("cannot open rtsp://u:topsecret@cam/1")
        except OSError:
            logger.exception("camera failed")
    assert "topsecret" not in caplog.text
    assert "rtsp://u:***@cam/1" in caplog.text
