"""Settings precedence: code > environment > config file > running local stack > defaults."""

import json
import os
import subprocess
import sys

import pytest

from spectare.core.config import load_settings
from spectare.core.errors import ConfigError


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("SPECTARE_CONFIG", "SPECTARE_STATE_DIR", "SPECTARE_NATS__URL", "SPECTARE_S3__ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def write_stack(state_dir, nats_url, s3_endpoint):
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "stack.json").write_text(json.dumps(
        {"pid": 1, "client": {"nats": {"url": nats_url}, "s3": {"endpoint": s3_endpoint, "access_key": "K"}}}
    ))


def test_defaults(workdir):
    s = load_settings()
    assert s.nats.url == "nats://127.0.0.1:4222" and s.s3.bucket == "spectare" and s.prefix == ""


def test_running_stack_is_found_without_flags(workdir):
    write_stack(workdir / ".spectare", "nats://127.0.0.1:5001", "127.0.0.1:5002")
    s = load_settings()
    assert (s.nats.url, s.s3.endpoint, s.s3.access_key) == ("nats://127.0.0.1:5001", "127.0.0.1:5002", "K")


def test_state_dir_from_environment(workdir, monkeypatch):
    write_stack(workdir / "elsewhere", "nats://127.0.0.1:5003", "127.0.0.1:5004")
    monkeypatch.setenv("SPECTARE_STATE_DIR", str(workdir / "elsewhere"))
    assert load_settings().nats.url == "nats://127.0.0.1:5003"


def test_file_beats_stack_and_environment_beats_file(workdir, monkeypatch):
    write_stack(workdir / ".spectare", "nats://127.0.0.1:5001", "127.0.0.1:5002")
    (workdir / "spectare.toml").write_text('[nats]\nurl = "nats://nats.prod:4222"\n[s3]\nbucket = "cctv"\n')
    s = load_settings()
    assert (s.nats.url, s.s3.bucket, s.s3.endpoint) == ("nats://nats.prod:4222", "cctv", "127.0.0.1:5002")
    monkeypatch.setenv("SPECTARE_NATS__URL", "nats://from-env:4222")
    assert load_settings().nats.url == "nats://from-env:4222"
    assert load_settings(nats={"url": "nats://from-code:1"}).nats.url == "nats://from-code:1"


def test_named_config_file(workdir, monkeypatch):
    (workdir / "prod.toml").write_text('prefix = "site1"\n[s3]\nendpoint = "https://s3.example.com/"\n')
    monkeypatch.setenv("SPECTARE_CONFIG", str(workdir / "prod.toml"))
    s = load_settings()
    assert s.names.media_stream == "SITE1_MEDIA"
    assert s.s3.endpoint == "s3.example.com"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SPECTARE_CONFIG": "/nonexistent/spectare.toml"}, "does not exist"),
        ({"SPECTARE_NATS__CONNECT_TIMEOUT": "0"}, "nats.connect_timeout"),
        ({"SPECTARE_STREAMS__MEDIA_MAX_AGE_S": "5"}, "streams.media_max_age_s"),
        ({"SPECTARE_LOG_LEVEL": "chatty"}, "log_level"),
    ],
)
def test_bad_settings_give_one_clear_error(workdir, monkeypatch, env, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


@pytest.mark.parametrize(
    ("service", "variable", "field"),
    [
        ("ingest", "SPECTARE_INGEST__MAX_CAMERAS", "ingest.max_cameras"),
        ("segmenter", "SPECTARE_SEGMENTER__FETCH_BATCH", "segmenter.fetch_batch"),
        ("detector", "SPECTARE_DETECTOR__BATCH_SIZE", "detector.batch_size"),
        ("indexer", "SPECTARE_INDEXER__BATCH_SIZE", "indexer.batch_size"),
    ],
)
def test_a_service_with_a_bad_setting_of_its_own_says_so_in_one_line(service, variable, field, tmp_path):
    result = subprocess.run([sys.executable, "-m", f"spectare.{service}"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, env={**os.environ, variable: "0"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"spectare-{service}: error: invalid settings: {field}:"), lines
