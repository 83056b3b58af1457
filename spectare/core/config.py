"""Settings: typed, bounded, described; read from a TOML file, the environment, and a running local stack.

Precedence, highest first: arguments given in code, environment (`SPECTARE_...`, nested fields with
`__`, e.g. `SPECTARE_NATS__URL`), the config file (`--config`, `SPECTARE_CONFIG`, else
`./spectare.toml` if present), the endpoints of a `spectare up` running in the state directory,
then defaults. So a CLI in the directory of a running local stack finds it without flags, and a
production deployment names its NATS and S3 in the file or the environment.
"""

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from spectare.core.errors import ConfigError
from spectare.schemas.names import Names

DEFAULT_STATE_DIR = Path(".spectare")
# Where `make setup` puts the demo footage, model files and test photos: the source checkout's assets/.
ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
STACK_FILE = "stack.json"  # written by `spectare up`, read by every other command
CONFIG_ENV = "SPECTARE_CONFIG"
DEFAULT_CONFIG_FILE = Path("spectare.toml")


class NatsSettings(BaseModel):
    url: str = Field(default="nats://127.0.0.1:4222", description="NATS server URL(s), comma-separated")
    user: str | None = Field(default=None, description="NATS user name")
    password: SecretStr | None = Field(default=None, description="NATS password")
    token: SecretStr | None = Field(default=None, description="NATS auth token")
    creds_file: Path | None = Field(default=None, description="NATS .creds file (JWT + nkey)")
    connect_timeout: Annotated[float, Field(gt=0, le=60)] = Field(
        default=3.0, description="seconds to wait for the first connection before failing"
    )

    @property
    def servers(self) -> list[str]:
        return [u.strip() for u in self.url.split(",") if u.strip()]


class S3Settings(BaseModel):
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPECTARE_", env_nested_delimiter="__", extra="ignore")

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
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        sources.append(_RunningStackSource(settings_cls))
        return tuple(sources)


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
        return stack.get("client", {}) if stack else {}


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
        f"{section}{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
    )
    return ConfigError(f"invalid settings: {problems}")


class SectionSettings(BaseSettings):
    """Base of one service's own settings: the `[<section>]` table of the config file, overridden by
    `SPECTARE_<SECTION>__<FIELD>` environment variables. Subclasses set `model_config` with
    `env_prefix` and `section()`."""

    model_config = SettingsConfigDict(extra="ignore")

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
        return init_settings, env_settings, _TomlSection(settings_cls, cls.section())

    @classmethod
    def load(cls, **overrides: Any) -> "SectionSettings":
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise _config_error(exc, f"{cls.section()}.") from None


class _TomlSection(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], section: str) -> None:
        super().__init__(settings_cls)
        self.section_name = section

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _config_file()
        if path is None:
            return {}
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        return data.get(self.section_name, {})
