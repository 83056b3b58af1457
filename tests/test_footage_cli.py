"""`spectare footage` against real servers when there is nothing to show or S3 is away; durations."""

import pytest

from spectare.core.errors import SpectareError
from spectare.core.store import ensure_bucket
from spectare.core.timeparse import parse_duration

from .helpers import run_cli as spectare


def test_nothing_recorded_yet(settings, js):
    result = spectare(settings, "footage", "ls", "--since", "2h")
    assert result.returncode == 0
    assert result.stdout.startswith("no footage since ")
    assert spectare(settings, "footage", "ls", "--json").stdout.strip() == "[]"


def test_missing_key_and_unreachable_s3_are_one_line_each(settings, js, tmp_path):
    ensure_bucket(settings.s3)
    missing = spectare(settings, "footage", "get", "footage/x/none.mp4", "-o", str(tmp_path / "a.mp4"))
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        f"spectare: error: downloading 'footage/x/none.mp4': NoSuchKey in bucket {settings.s3.bucket}"
    ]
    away = spectare(settings, "footage", "get", "footage/x/none.mp4", "-o", str(tmp_path / "a.mp4"),
                    SPECTARE_S3__ENDPOINT="127.0.0.1:9")
    assert away.returncode == 1
    lines = away.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("spectare: error: S3 at http://127.0.0.1:9 is unreachable")


def test_bad_since_is_a_clear_error(settings):
    result = spectare(settings, "footage", "ls", "--since", "two hours")
    assert result.returncode == 1
    assert "cannot read 'two hours' as a duration" in result.stderr


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400),
                                               ("3d", 259200), ("1w", 604800), ("0.5h", 1800), ("2H", 7200)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "2h-1m", "yesterday"])
def test_bad_durations(text):
    with pytest.raises(SpectareError):
        parse_duration(text)
