"""Settings: typed, bounded, described; read from a TOML file, the environment, and a running local stack.

Precedence, highest first: arguments given in code, environment (`SPECTARE_...`, nested fields with
`__`, e.g. `SPECTARE_NATS__URL`), the config file (`--config`, `SPECTARE_CONFIG`, else
`./spectare.toml` if present), the endpoints of a `spectare up` running in the state directory,
then defaults. So a CLI in the directory of a running local stack finds it without flags, and a
production deployment names its NATS and S3 in the file or the environment.

Keys are strict: a typo is refused with one line naming it and the closest known name, never ignored.
The shared `Settings` (every process) checks the file's top-level keys and its `[nats]`, `[s3]`, `[streams]`
and `[leases]` tables, and every `SPECTARE_*` environment variable: a shared field, `SPECTARE_NATS__...`
etc. naming a field of that table, one of `OTHER_ENV`, or a `SPECTARE_<SECTION>__` prefix of one of
`SERVICE_SECTIONS`. The fields inside a service's section are that service's: its `SectionSettings`
subclass checks its `[<section>]` table and `SPECTARE_<SECTION>__*` variables when that service loads it
(the core imports no service, and a process must not refuse another service's settings). The checks run
as the sources are set up, before pydantic validates anything: pydantic-settings reads only the environment
variables of fields it knows, so `extra="forbid"` alone refuses extra keys given in code (and in a shared
table) but passes over `SPECTARE_LOG_LEVL` or `SPECTARE_SEGMENTER__FETCH_BACH` in silence, and a file's
service tables must reach their services, not the shared model. Values are never printed: they may be
passwords.
"""

import difflib
import json
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from spectare.core.errors import ConfigError
from spectare.schemas.names import Names

DEFAULT_STATE_DIR = Path(".spectare")
# Where `make setup` puts the demo footage, model files and test photos: the source checkout's assets/.
ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
STACK_FILE = "stack.json"  # written by `spectare up`, read by every other command
CONFIG_ENV = "SPECTARE_CONFIG"
DEFAULT_CONFIG_FILE = Path("spectare.toml")
ENV_PREFIX = "SPECTARE_"
# The config-file tables (and `SPECTARE_<SECTION>__` variables) that services own; each service checks its own.
SERVICE_SECTIONS = ("ingest", "segmenter", "detector", "indexer", "api")
# SPECTARE_* variables read outside the settings models: known, not refused.
OTHER_ENV = frozenset({
    CONFIG_ENV,
    "SPECTARE_FFMPEG",  # spectare/local/testcam.py: the ffmpeg of the RTSP test camera
    "SPECTARE_GI_PYTHON",  # spectare/local/testcam.py: a Python with GStreamer's bindings
    "SPECTARE_DEMO_SOURCE",  # tests/media.py: another video for the tests
})
# Kubernetes gives every pod `<SERVICE>_SERVICE_HOST`, `<SERVICE>_PORT=tcp://...` and the like for each Service of
# its namespace (Docker's --link too), so a Service named spectare-<x> makes SPECTARE_<X>_... variables: tolerated
# (deploy/kubernetes also turns them off with enableServiceLinks: false). A plain `_PORT` one only with such a value.
_SERVICE_LINK = re.compile(
    r"^SPECTARE_\w+?_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)$"
)
_SERVICE_LINK_PORT = re.compile(r"^SPECTARE_\w+_PORT$")
_SERVICE_LINK_URL = re.compile(r"^(tcp|udp|sctp)://")


class NatsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(default="nats://127.0.0.1:4222", description="NATS server URL(s), comma-separated")
    user: str | None = Field(default=None, description="NATS user name")
    password: SecretStr | None = Field(default=None, description="NATS password")
    token: SecretStr | None = Field(default=None, description="NATS auth token")
    creds_file: Path | None = Field(default=None, description="NATS .creds file (JWT + nkey)")
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = Field(
        default=3.0, description="seconds to wait for the first connection before failing"
    )
    jetstream_patience_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=60.0, description="seconds a service waits at start for JetStream to answer (a cluster that lost a "
                                  "node elects a new leader meanwhile) before it exits with one line"
    )

    @property
    def servers(self) -> list[str]:
        return [u.strip() for u in self.url.split(",") if u.strip()]


class S3Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(default="127.0.0.1:9000", description="S3 host:port (no scheme)")
    access_key: str = Field(default="", description="S3 access key")
    secret_key: SecretStr = Field(default=SecretStr(""), description="S3 secret key")
    secure: bool = Field(default=False, description="use HTTPS")
    region: str = Field(default="us-east-1", description="S3 region")
    bucket: str = Field(default="spectare", min_length=3, max_length=63, description="bucket for all footage")

    @field_validator("endpoint")
    @classmethod
    def _no_scheme(cls, value: str) -> str:
        for scheme in ("http://", "https://"):
            if value.startswith(scheme):
                return value[len(scheme) :].rstrip("/")
        return value.rstrip("/")


class StreamSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_max_age_s: Annotated[int, Field(ge=60, le=7 * 86400)] = Field(
        default=900, description="how long encoded packets stay in JetStream (the recording buffer)"
    )
    keyframes_max_age_s: Annotated[int, Field(ge=5, le=86400)] = Field(
        default=120, description="how long keyframes wait for a detector"
    )
    detections_max_age_s: Annotated[int, Field(ge=3600, le=3650 * 86400)] = Field(
        default=30 * 86400, description="how long detection events stay in JetStream"
    )
    replicas: Annotated[int, Field(ge=1, le=5)] = Field(default=1, description="stream replicas (3 on a cluster)")


class LeaseSettings(BaseModel):
    """Who owns which camera (spectare.core.leases): how fast a dead worker's cameras move, and who a process is."""

    model_config = ConfigDict(extra="forbid")

    ttl_s: Annotated[float, Field(ge=2, le=120)] = Field(
        default=5.0,
        description="a worker that stops renewing its leases loses its cameras to another worker after this long "
        "(a bucket setting: give every process the same value; workers renew four times per TTL)",
    )
    worker_id: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[-_=a-zA-Z0-9{}.]+$",
        description="this process's identity as a camera worker, kept across restarts so a restarted process takes "
        "its own cameras back at once instead of waiting for the TTL (`{host}` is replaced by the host name: a "
        "pod name under Kubernetes). Unique per live process of a role: a second process started with the same id "
        "takes the cameras over and the first stands by. Default: a new identity per process (`spectare up` gives "
        "each service its own stable one)",
    )


class Settings(BaseSettings):
    """What every process shares. Strict: an unknown key or `SPECTARE_*` variable is a ConfigError naming it and
    the closest known one (see the module docstring); the tables of `SERVICE_SECTIONS` are left to their services."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    prefix: str = Field(default="", description="namespace for every subject, stream and bucket name")
    state_dir: Path = Field(default=DEFAULT_STATE_DIR, description="where `spectare up` keeps data")
    log_level: str = Field(default="INFO", pattern=r"(?i)^(debug|info|warning|error)$")
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=0, description="port of this process's Prometheus /metrics (0: none); each process needs its own"
    )
    metrics_host: str = Field(default="0.0.0.0", description="address /metrics listens on")
    nats: NatsSettings = NatsSettings()
    s3: S3Settings = S3Settings()
    streams: StreamSettings = StreamSettings()
    leases: LeaseSettings = LeaseSettings()

    @property
    def names(self) -> Names:
        return Names(self.prefix)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path, data = read_config_file()
        _refuse(cls.unknown_names(path, data, os.environ))
        shared = {key: value for key, value in data.items() if key not in SERVICE_SECTIONS}
        return init_settings, env_settings, _Values(settings_cls, shared), _RunningStackSource(settings_cls)

    @classmethod
    def unknown_names(cls, path: Path | None, data: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
        """A line for each key of config file `path` (`data`) and each `SPECTARE_*` variable of `environ` that
        is no shared setting (services' sections aside), with the closest known name; empty when all are known."""
        return _unknown_shared_keys(path, data) + _unknown_shared_env(environ)


def _nested(name: str) -> type[BaseModel] | None:
    """The model of shared table `name` (nats, s3, streams, leases), or None."""
    field = Settings.model_fields.get(name)
    annotation = field.annotation if field is not None else None
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _closest(name: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(known), n=1)
    return close[0] if close else None


def _unknown_key(key: str, path: Path | None, leaf: str, known: Iterable[str]) -> str:
    """`unknown key nats.urll in spectare.toml (did you mean url?)`: the name in `known` closest to `leaf`."""
    guess = _closest(leaf, known)
    return f"unknown key {key} in {path}" + (f" (did you mean {guess}?)" if guess else "")


def _unknown_var(name: str, prefix: str, leaf: str, known: Iterable[str]) -> str:
    """`unknown environment variable SPECTARE_NATS__URLL (did you mean SPECTARE_NATS__URL?)`: `prefix` and the
    name in `known` closest to `leaf` (the part after the prefix; comparing whole names would favour the prefix)."""
    guess = _closest(leaf, known)
    return f"unknown environment variable {name}" + (f" (did you mean {prefix}{guess.upper()}?)" if guess else "")


def _refuse(problems: list[str]) -> None:
    if problems:
        raise ConfigError("invalid settings: " + "; ".join(problems))


def _unknown_shared_keys(path: Path | None, data: Mapping[str, Any]) -> list[str]:
    """The config file's top-level keys and [nats]/[s3]/[streams]/[leases] keys that are no setting."""
    problems = []
    for key, value in data.items():
        if key in SERVICE_SECTIONS:
            continue
        if key not in Settings.model_fields:
            problems.append(_unknown_key(key, path, key, [*Settings.model_fields, *SERVICE_SECTIONS]))
        elif (model := _nested(key)) is not None and isinstance(value, dict):
            problems += [_unknown_key(f"{key}.{sub}", path, sub, model.model_fields)
                         for sub in value if sub not in model.model_fields]
    return problems


def _unknown_shared_env(environ: Mapping[str, str]) -> list[str]:
    """SPECTARE_* variables that are neither a shared setting, nor one of OTHER_ENV, nor in a service's section
    (whose fields that service checks), nor a Kubernetes service link; case-insensitive, like pydantic-settings."""
    tables = [*SERVICE_SECTIONS, *(name for name in Settings.model_fields if _nested(name))]
    problems = []
    for name, value in sorted(environ.items()):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in OTHER_ENV:
            continue
        key = upper[len(ENV_PREFIX):].lower()
        head, nested, field = key.partition("__")
        if nested:
            if head in SERVICE_SECTIONS:
                continue
            if (model := _nested(head)) is not None:
                if field not in model.model_fields:
                    problems.append(_unknown_var(name, f"{ENV_PREFIX}{head.upper()}__", field, model.model_fields))
                continue
            table = _closest(head, tables)  # SPECTARE_SEGMENTR__FETCH_BATCH
            problems.append(f"unknown environment variable {name}" + (
                f" (did you mean {ENV_PREFIX}{table.upper()}__{field.upper()}?)" if table else ""))
            continue
        if key in Settings.model_fields or _SERVICE_LINK.match(upper) or (
                _SERVICE_LINK_PORT.match(upper) and _SERVICE_LINK_URL.match(value)):
            continue
        table = next((t for t in tables if key.startswith(f"{t}_")), None)  # SPECTARE_SEGMENTER_FETCH_BATCH
        if table is not None:
            guess = f"{ENV_PREFIX}{table.upper()}__{key[len(table) + 1:].upper()}"
            problems.append(f"unknown environment variable {name} (did you mean {guess}?)")
        else:
            others = [other[len(ENV_PREFIX):].lower() for other in OTHER_ENV]
            problems.append(_unknown_var(name, ENV_PREFIX, key, [*Settings.model_fields, *others]))
    return problems


def read_config_file() -> tuple[Path | None, dict[str, Any]]:
    """The config file in use and its contents ((None, {}) without one); unreadable or bad TOML: ConfigError."""
    path = _config_file()
    if path is None:
        return None, {}
    try:
        return path, tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


class _Values(PydanticBaseSettingsSource):
    """Values read already (a table of the config file)."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self.values = values

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.values


def _config_file() -> Path | None:
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"config file {path} (from ${CONFIG_ENV}) does not exist")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


class _RunningStackSource(PydanticBaseSettingsSource):
    """Endpoints and credentials of a `spectare up` running in the state directory, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        state_dir = Path(os.environ.get("SPECTARE_STATE_DIR", DEFAULT_STATE_DIR))
        stack = read_stack_file(state_dir)
        client = stack.get("client", {}) if stack else {}
        # Written by `spectare up`, not a user: keys another version wrote are left out, not refused.
        known = {name: value for name, value in client.items() if name in Settings.model_fields}
        return {name: {k: v for k, v in value.items() if k in model.model_fields}
                if (model := _nested(name)) is not None and isinstance(value, dict) else value
                for name, value in known.items()}


def read_stack_file(state_dir: Path) -> dict[str, Any] | None:
    """The running local stack's description, or None if no stack has written one."""
    try:
        return json.loads((state_dir / STACK_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that make another Spectare process use the same servers as `settings`."""
    return {
        "SPECTARE_PREFIX": settings.prefix,
        "SPECTARE_STATE_DIR": str(settings.state_dir),
        "SPECTARE_NATS__URL": settings.nats.url,
        "SPECTARE_S3__ENDPOINT": settings.s3.endpoint,
        "SPECTARE_S3__ACCESS_KEY": settings.s3.access_key,
        "SPECTARE_S3__SECRET_KEY": settings.s3.secret_key.get_secret_value(),
        "SPECTARE_S3__BUCKET": settings.s3.bucket,
        "SPECTARE_S3__SECURE": "true" if settings.s3.secure else "false",
    }


def load_settings(**overrides: Any) -> Settings:
    """Build Settings, turning validation problems into one readable ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise _config_error(exc) from None


def _config_error(exc: ValidationError, section: str = "") -> ConfigError:
    """One line naming every bad field (never its value: it may be a password)."""
    problems = "; ".join(
        f"unknown key {section}{'.'.join(str(p) for p in e['loc'])}" if e["type"] == "extra_forbidden"
        else f"{section}{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
    )
    return ConfigError(f"invalid settings: {problems}")


class SectionSettings(BaseSettings):
    """Base of one service's own settings: the `[<section>]` table of the config file, overridden by
    `SPECTARE_<SECTION>__<FIELD>` environment variables. Subclasses set `model_config` with
    `env_prefix` and `section()`.

    Strict: a key of the table or a `SPECTARE_<SECTION>__*` variable that is no field of the class is a
    ConfigError naming it and the closest field (`unknown key segmenter.fetch_bach in spectare.toml (did you
    mean fetch_batch?)`), raised when the class is built, i.e. when its service loads it; the shared `Settings`
    only checks that the section is one of `SERVICE_SECTIONS`. A class reading a part of another service's
    section sets `strict_keys = False` (see `ingest_max_cameras`)."""

    model_config = SettingsConfigDict(extra="forbid")
    strict_keys: ClassVar[bool] = True

    @classmethod
    def section(cls) -> str:
        raise NotImplementedError

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        section = cls.section()
        path, data = read_config_file()
        table = data.get(section, {})
        if not isinstance(table, dict):
            raise ConfigError(f"invalid settings: {section} in {path} is not a table ([{section}])")
        if cls.strict_keys:
            _refuse(cls.unknown_names(path, table, os.environ))
        return init_settings, env_settings, _Values(settings_cls, table)

    @classmethod
    def unknown_names(cls, path: Path | None, table: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
        """A line for each key of the section's `table` (from config file `path`) and each variable of `environ`
        with the section's prefix that is no field of this class, with the closest field; empty when all are known."""
        section, fields = cls.section(), cls.model_fields
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        problems = [_unknown_key(f"{section}.{key}", path, key, fields) for key in table if key not in fields]
        return problems + [_unknown_var(name, prefix, leaf, fields) for name in sorted(environ)
                           if prefix and name.upper().startswith(prefix)
                           and (leaf := name.upper()[len(prefix):].lower()) not in fields]

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise _config_error(exc, f"{cls.section()}.") from None


class IngestCapacity(SectionSettings):
    """The part of `[ingest]` that another process reads too: the cameras one ingest worker takes, behind the
    API's scaling signal. Ingest's `IngestSettings` extends it; others read it with `ingest_max_cameras()`."""

    model_config = SettingsConfigDict(env_prefix="SPECTARE_INGEST__")

    @classmethod
    def section(cls) -> str:
        return "ingest"

    max_cameras: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=64, description="most cameras one ingest worker pulls at once"
    )


class _IngestCapacityOnly(IngestCapacity):
    """`IngestCapacity` outside ingest: ingest's other keys are ingest's to check, so they are passed over."""

    model_config = SettingsConfigDict(extra="ignore")
    strict_keys: ClassVar[bool] = False


def ingest_max_cameras() -> int:
    """`[ingest] max_cameras` (or `SPECTARE_INGEST__MAX_CAMERAS`) of this process's config, bounds checked
    (ConfigError), for processes other than ingest; ingest's other keys are not looked at."""
    return _IngestCapacityOnly.load().max_cameras
