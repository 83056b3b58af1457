"""Settings precedence: code > environment > config file > running local stack > defaults; strict keys."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spectare.api.service import ingest_capacity
from spectare.api.settings import ApiSettings
from spectare.core.config import (
    OTHER_ENV,
    SERVICE_SECTIONS,
    IngestCapacity,
    SectionSettings,
    Settings,
    ingest_max_cameras,
    load_settings,
)
from spectare.core.errors import ConfigError
from spectare.detector.settings import DetectorSettings
from spectare.indexer.settings import IndexerSettings
from spectare.ingest.settings import IngestSettings
from spectare.segmenter.settings import SegmenterSettings

ROOT = Path(__file__).resolve().parents[1]
SECTIONS: dict[str, type[SectionSettings]] = {
    cls.section(): cls for cls in (ApiSettings, DetectorSettings, IndexerSettings, IngestSettings, SegmenterSettings)
}
SECRET = "hunter2-do-not-print"  # the value of every unknown key below: no message may show it


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in [v for v in os.environ if v.upper().startswith("SPECTARE_")]:
        monkeypatch.delenv(var)
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


LOADERS = {"shared": load_settings, **{name: cls.load for name, cls in SECTIONS.items()}}


@pytest.mark.parametrize(
    ("loader", "toml", "env", "line"),
    [
        # a typo'd key in a service's section of the file (checked by that service's settings)
        ("segmenter", "[segmenter]\nfetch_bach = X\n", {},
         "unknown key segmenter.fetch_bach in spectare.toml (did you mean fetch_batch?)"),
        ("segmenter", "[segmenter]\nsegment_secnds = X\n", {},  # segment_seconds is a camera's, not the segmenter's
         "unknown key segmenter.segment_secnds in spectare.toml"),
        ("ingest", "[ingest]\nmax_camera = X\n", {},
         "unknown key ingest.max_camera in spectare.toml (did you mean max_cameras?)"),
        ("detector", "[detector]\nmin_scor = X\n", {},
         "unknown key detector.min_scor in spectare.toml (did you mean min_score?)"),
        ("indexer", "[indexer]\nkeep_day = X\n", {},
         "unknown key indexer.keep_day in spectare.toml (did you mean keep_days?)"),
        ("api", "[api]\nprot = X\n", {}, "unknown key api.prot in spectare.toml (did you mean port?)"),
        # a typo'd environment variable of a section
        ("segmenter", "", {"SPECTARE_SEGMENTER__FETCH_BACH": SECRET},
         "unknown environment variable SPECTARE_SEGMENTER__FETCH_BACH (did you mean SPECTARE_SEGMENTER__FETCH_BATCH?)"),
        ("api", "", {"SPECTARE_API__STALE_AFTER": SECRET},
         "unknown environment variable SPECTARE_API__STALE_AFTER (did you mean SPECTARE_API__STALE_AFTER_S?)"),
        # keys of the shared settings, in the file (every process checks them)
        ("shared", "[segmentr]\nfetch_batch = X\n", {},
         "unknown key segmentr in spectare.toml (did you mean segmenter?)"),
        ("shared", "log_levl = X\n", {}, "unknown key log_levl in spectare.toml (did you mean log_level?)"),
        ("shared", "[nats]\npasword = X\n", {}, "unknown key nats.pasword in spectare.toml (did you mean password?)"),
        ("shared", "[s3]\nsecretkey = X\n", {}, "unknown key s3.secretkey in spectare.toml (did you mean secret_key?)"),
        # ... and in the environment
        ("shared", "", {"SPECTARE_LOG_LEVL": SECRET},
         "unknown environment variable SPECTARE_LOG_LEVL (did you mean SPECTARE_LOG_LEVEL?)"),
        ("shared", "", {"SPECTARE_CONFG": SECRET},
         "unknown environment variable SPECTARE_CONFG (did you mean SPECTARE_CONFIG?)"),
        ("shared", "", {"SPECTARE_NATS__PASWORD": SECRET},
         "unknown environment variable SPECTARE_NATS__PASWORD (did you mean SPECTARE_NATS__PASSWORD?)"),
        ("shared", "", {"SPECTARE_S3_SECRET_KEY": SECRET},
         "unknown environment variable SPECTARE_S3_SECRET_KEY (did you mean SPECTARE_S3__SECRET_KEY?)"),
        ("shared", "", {"SPECTARE_SEGMENTR__FETCH_BATCH": SECRET},
         "unknown environment variable SPECTARE_SEGMENTR__FETCH_BATCH (did you mean SPECTARE_SEGMENTER__FETCH_BATCH?)"),
        ("shared", "", {"SPECTARE_WHATEVER": SECRET}, "unknown environment variable SPECTARE_WHATEVER"),
        ("shared", "", {"spectare_nats__urll": SECRET},  # pydantic-settings reads names in any case
         "unknown environment variable spectare_nats__urll (did you mean SPECTARE_NATS__URL?)"),
        ("shared", "", {"SPECTARE_API_PORT": "8080"},  # no Kubernetes service link: that one is tcp://host:port
         "unknown environment variable SPECTARE_API_PORT (did you mean SPECTARE_API__PORT?)"),
        # several at once: one line naming each
        ("shared", "prefx = X\n", {"SPECTARE_PREFX": SECRET},
         "unknown key prefx in spectare.toml (did you mean prefix?); "
         "unknown environment variable SPECTARE_PREFX (did you mean SPECTARE_PREFIX?)"),
    ],
)
def test_an_unknown_key_is_refused_in_one_line_with_the_closest_name(workdir, monkeypatch, loader, toml, env, line):
    (workdir / "spectare.toml").write_text(toml.replace("X", json.dumps(SECRET)))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as refused:
        LOADERS[loader]()
    assert str(refused.value) == f"invalid settings: {line}"
    assert SECRET not in str(refused.value)


def test_known_keys_and_the_other_variables_still_work(workdir, monkeypatch):
    """Every process tolerates every section (another service's keys are that service's to check), the variables
    Spectare reads outside the models, and the service links Kubernetes adds for a Service named spectare-api."""
    (workdir / "conf.toml").write_text(
        'prefix = "site1"\nlog_level = "debug"\n[nats]\nurl = "nats://n:4222"\n[s3]\nbucket = "cctv"\n'
        "[streams]\nreplicas = 3\n[ingest]\nmax_cameras = 12\n[segmenter]\nfetch_batch = 7\n"
        '[detector]\nlabels = ["person"]\n[indexer]\nkeep_days = 3\n[api]\nport = 9001\n'
    )
    for key, value in {
        "SPECTARE_CONFIG": str(workdir / "conf.toml"), "SPECTARE_STATE_DIR": str(workdir / "state"),
        "SPECTARE_FFMPEG": "/usr/bin/ffmpeg", "SPECTARE_GI_PYTHON": "/usr/bin/python3",
        "SPECTARE_DEMO_SOURCE": "x.mp4", "SPECTARE_S3__SECRET_KEY": SECRET, "SPECTARE_METRICS_PORT": "9100",
        "SPECTARE_DETECTOR__BATCH_SIZE": "4",  # the Dockerfile sets a detector variable for every service
        "SPECTARE_API_SERVICE_HOST": "10.0.0.7", "SPECTARE_API_SERVICE_PORT": "80",
        "SPECTARE_API_SERVICE_PORT_HTTP": "80", "SPECTARE_API_PORT": "tcp://10.0.0.7:80",
        "SPECTARE_API_PORT_80_TCP": "tcp://10.0.0.7:80", "SPECTARE_API_PORT_80_TCP_PROTO": "tcp",
        "SPECTARE_API_PORT_80_TCP_PORT": "80", "SPECTARE_API_PORT_80_TCP_ADDR": "10.0.0.7",
    }.items():
        monkeypatch.setenv(key, value)
    s = load_settings()
    assert (s.prefix, s.nats.url, s.s3.bucket, s.streams.replicas, s.metrics_port) == (
        "site1", "nats://n:4222", "cctv", 3, 9100)
    assert s.state_dir == workdir / "state" and s.s3.secret_key.get_secret_value() == SECRET
    assert (SegmenterSettings.load().fetch_batch, IngestSettings.load().max_cameras, IndexerSettings.load().keep_days,
            ApiSettings.load().port) == (7, 12, 3, 9001)
    assert (DetectorSettings.load().labels, DetectorSettings.load().batch_size) == (("person",), 4)


def test_keys_given_in_code_are_strict_too(workdir):
    with pytest.raises(ConfigError, match=r"^invalid settings: unknown key nats\.urll$"):
        load_settings(nats={"urll": SECRET})
    with pytest.raises(ConfigError, match=r"^invalid settings: unknown key segmenter\.fetch_bach$"):
        SegmenterSettings.load(fetch_bach=1)


def test_every_spectare_variable_the_tree_names_is_known():
    """SPECTARE_* names in code, tests, benchmarks and deploy/ (this file and the settings module name typos on
    purpose): a shared setting, a variable read outside the models, or a field of a service's section."""
    skip = {ROOT / "tests" / "test_config.py", ROOT / "spectare" / "core" / "config.py"}
    folders = ("spectare", "services", "schemas", "tests", "bench", "deploy", "scripts")
    files = [ROOT / "Makefile", *(f for d in folders for f in (ROOT / d).rglob("*")
                                  if f.is_file() and f.suffix in {"", ".py", ".yaml", ".sh", ".toml"})]
    names = {name for f in files if f not in skip
             for name in re.findall(r"\bSPECTARE_[A-Z0-9_]*[A-Z0-9]\b", f.read_text(errors="replace"))}
    assert OTHER_ENV | {"SPECTARE_STATE_DIR"} <= names, "OTHER_ENV names a variable nothing reads"
    unknown = []
    for name in sorted(names):
        unknown += Settings.unknown_names(None, {}, {name: ""})
        head = name.removeprefix("SPECTARE_").lower().partition("__")[0]
        if head in SECTIONS:
            unknown += SECTIONS[head].unknown_names(None, {}, {name: ""})
    assert not unknown


def test_the_core_knows_every_service_section():
    assert set(SERVICE_SECTIONS) == set(SECTIONS) == {p.name for p in (ROOT / "services").iterdir()
                                                       if (p / "settings.py").is_file()}


@pytest.mark.parametrize(
    ("toml", "env", "capacity"),
    [
        ("", {}, 64),
        # ingest's other keys, known or not, are ingest's to check, not the API's
        ('[ingest]\nmax_cameras = 12\nrtsp_client = "ffmpeg"\nnot_yet_known = 1\n', {}, 12),
        ("[ingest]\nmax_cameras = 12\n", {"SPECTARE_INGEST__MAX_CAMERAS": "20"}, 20),
        ("[ingest]\nmax_cameras = 12\n[api]\nmax_cameras_per_worker = 5\n", {}, 5),
        ("", {"SPECTARE_API__MAX_CAMERAS_PER_WORKER": "7", "SPECTARE_INGEST__MAX_CAMERAS": "20"}, 7),
    ],
)
def test_ingest_capacity_reaches_the_api_through_the_core(workdir, monkeypatch, toml, env, capacity):
    (workdir / "spectare.toml").write_text(toml)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert ingest_capacity(ApiSettings.load()) == capacity  # type: ignore[arg-type]


def test_ingest_capacity_is_bounded_and_defined_once(workdir):
    assert issubclass(IngestSettings, IngestCapacity) and "max_cameras" not in IngestSettings.__annotations__
    (workdir / "spectare.toml").write_text("[ingest]\nmax_cameras = 1001\n")
    with pytest.raises(ConfigError, match=r"^invalid settings: ingest\.max_cameras: Input should be less than or"):
        ingest_max_cameras()


def test_the_api_reads_ingest_capacity_without_importing_ingest(tmp_path):
    (tmp_path / "spectare.toml").write_text('[ingest]\nmax_cameras = 12\nrtsp_client = "ffmpeg"\n')
    code = ("import sys; from spectare.api.service import ingest_capacity; from spectare.api.settings import "
            "ApiSettings; print(ingest_capacity(ApiSettings.load()), "
            "sorted(m for m in sys.modules if m.startswith('spectare.ingest')))")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SPECTARE_")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["12", "[]"]


@pytest.mark.parametrize(
    ("service", "variable", "value", "line"),
    [
        ("ingest", "SPECTARE_INGEST__MAX_CAMERAS", "0", "ingest.max_cameras: Input should be greater"),
        ("segmenter", "SPECTARE_SEGMENTER__FETCH_BATCH", "0", "segmenter.fetch_batch: Input should be greater"),
        ("detector", "SPECTARE_DETECTOR__BATCH_SIZE", "0", "detector.batch_size: Input should be greater"),
        ("indexer", "SPECTARE_INDEXER__BATCH_SIZE", "0", "indexer.batch_size: Input should be greater"),
        ("api", "SPECTARE_INGEST__MAX_CAMERAS", "0", "ingest.max_cameras: Input should be greater"),
        # a typo: refused before anything is connected to, the value (maybe a password) not shown
        ("segmenter", "SPECTARE_SEGMENTER__SEGMENT_SECNDS", SECRET,
         "unknown environment variable SPECTARE_SEGMENTER__SEGMENT_SECNDS"),
        ("segmenter", "SPECTARE_SEGMENTER__FETCH_BACH", SECRET,
         "unknown environment variable SPECTARE_SEGMENTER__FETCH_BACH (did you mean SPECTARE_SEGMENTER__FETCH_BATCH?)"),
        ("ingest", "SPECTARE_NATS__PASWORD", SECRET,
         "unknown environment variable SPECTARE_NATS__PASWORD (did you mean SPECTARE_NATS__PASSWORD?)"),
        ("api", "SPECTARE_API__PROT", SECRET,
         "unknown environment variable SPECTARE_API__PROT (did you mean SPECTARE_API__PORT?)"),
        ("indexer", "SPECTARE_DETECTR__BATCH_SIZE", SECRET,
         "unknown environment variable SPECTARE_DETECTR__BATCH_SIZE (did you mean SPECTARE_DETECTOR__BATCH_SIZE?)"),
    ],
)
def test_a_service_with_a_bad_setting_of_its_own_says_so_in_one_line(service, variable, value, line, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SPECTARE_")}
    result = subprocess.run([sys.executable, "-m", f"spectare.{service}"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, env={**env, variable: value})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"spectare-{service}: error: invalid settings: {line}"), lines
    assert SECRET not in result.stderr + result.stdout


def test_a_service_with_a_typo_in_the_file_says_so_in_one_line(tmp_path):
    (tmp_path / "spectare.toml").write_text(f'[segmenter]\nfetch_bach = "{SECRET}"\n')
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("SPECTARE_")}
    result = subprocess.run([sys.executable, "-m", "spectare.segmenter"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, env=env)
    assert (result.returncode, result.stderr.strip()) == (
        1, "spectare-segmenter: error: invalid settings: unknown key segmenter.fetch_bach in spectare.toml "
           "(did you mean fetch_batch?)")
