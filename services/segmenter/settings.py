"""The segmenter's own settings: `[segmenter]` in the config file, `SPECTARE_SEGMENTER__<FIELD>` in the
environment (see `spectare.core.config.SectionSettings`); NATS, S3 and the prefix come from the shared
`Settings`."""

from typing import Annotated

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from spectare.core.config import SectionSettings


class SegmenterSettings(SectionSettings):
    model_config = SettingsConfigDict(env_prefix="SPECTARE_SEGMENTER__")

    @classmethod
    def section(cls) -> str:
        return "segmenter"

    max_cameras: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=64, description="cameras one segmenter process records at most (the rest go to other workers)"
    )
    stall_timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=15.0,
        description="no packet for this long closes the open chunk and announces an open gap. Longer than a NATS "
        "cluster's failover (a lost node's streams elect new leaders, ingest resends what was not stored: ~10 s), "
        "so late packets are not taken for a stalled camera; a camera whose ingest died is seen sooner, by the new "
        "session another worker starts",
    )
    fetch_batch: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=256, description="messages asked for per pull request"
    )
    fetch_timeout_s: Annotated[float, Field(ge=0.05, le=60)] = Field(
        default=5.0,
        description="how long one pull request stays open at the server: messages flow through it as they are stored, "
        "and the next one is sent when it ends (expired, full, or lost with the connection)",
    )
    fetch_interval_s: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.25,
        description="how often the messages delivered meanwhile are taken (at once when a pull request fills up): "
        "fewer, fuller wake-ups (CPU) for at most this much more chunk latency; 0 wakes up for every message",
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


def load_segmenter_settings(**overrides: object) -> SegmenterSettings:
    """SegmenterSettings, with validation problems turned into one readable ConfigError."""
    return SegmenterSettings.load(**overrides)
