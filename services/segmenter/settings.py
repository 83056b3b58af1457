"""The segmenter's own settings: the `[segmenter]` table of the config file, or `SPECTARE_SEGMENTER__<FIELD>`.

Precedence is the same as for the shared settings (arguments in code, environment, config file,
defaults); the shared ones (NATS, S3, prefix) still come from `spectare.core.config.Settings`.
"""

from typing import Annotated

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from spectare.core.config import _config_file
from spectare.core.errors import ConfigError


class SegmenterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPECTARE_SEGMENTER__", extra="ignore")

    max_cameras: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=64, description="cameras one segmenter process records at most (the rest go to other workers)"
    )
    stall_timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=5.0, description="no packet for this long closes the open chunk and announces an open gap"
    )
    fetch_batch: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=256, description="messages asked for per pull request"
    )
    fetch_timeout_s: Annotated[float, Field(ge=0.05, le=5)] = Field(
        default=0.5, description="longest wait of one pull request; bounds chunk latency and stall resolution"
    )
    ack_wait_s: Annotated[float, Field(ge=30, le=86_400)] = Field(
        default=900.0, description="JetStream redelivers a message not acked for this long (chunks ack late)"
    )
    max_ack_pending: Annotated[int, Field(ge=1_000, le=1_000_000)] = Field(
        default=10_000,
        description="messages one camera may hold un-acked (in memory, waiting for upload); beyond it JetStream "
        "holds back delivery. Chunks are also cut at the first keyframe after max_ack_pending/2 packets",
    )
    upload_timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=30.0, description="longest one S3 request may take before it is retried"
    )
    upload_backoff_min_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=0.2, description="first pause before retrying a failed S3 upload or NATS publish"
    )
    upload_backoff_max_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=10.0, description="longest pause between retries (the pause doubles up to this)"
    )
    publish_timeout_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=5.0, description="longest wait for JetStream to acknowledge one footage event"
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> "SegmenterSettings":
        if self.upload_backoff_max_s < self.upload_backoff_min_s:
            raise ValueError("upload_backoff_max_s must be >= upload_backoff_min_s")
        return self

    @property
    def max_chunk_packets(self) -> int:
        """A chunk is cut at the first keyframe after this many packets, whatever its length, so that one
        chunk never needs more un-acked messages than JetStream delivers."""
        return self.max_ack_pending // 2

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
            sources.append(
                TomlConfigSettingsSource(settings_cls, toml_file=config_file, toml_table_header=("segmenter",))
            )
        return tuple(sources)


def load_segmenter_settings(**overrides: object) -> SegmenterSettings:
    """SegmenterSettings, with validation problems turned into one readable ConfigError."""
    try:
        return SegmenterSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"segmenter.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None
