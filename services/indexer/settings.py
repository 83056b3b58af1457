"""The indexer's own settings: `[indexer]` in the config file, `SPECTARE_INDEXER__<FIELD>` in the environment
(see `spectare.core.config.SectionSettings`); NATS, S3, the state directory and the prefix come from the
shared `Settings`."""

from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from spectare.core.config import SectionSettings, Settings


class IndexerSettings(SectionSettings):
    model_config = SettingsConfigDict(env_prefix="SPECTARE_INDEXER__")

    @classmethod
    def section(cls) -> str:
        return "indexer"

    database: Path | None = Field(
        default=None, description="the DuckDB file; default <state_dir>/index/spectare.duckdb. Delete it (indexer "
        "stopped) to rebuild the index from the streams"
    )
    consumer_prefix: str = Field(
        default="indexer", pattern=r"^[A-Za-z0-9_-]{1,32}$",
        description="durable consumers are <prefix>_footage, <prefix>_detections and <prefix>_events; a second "
        "indexer with its own database needs its own prefix",
    )
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=5_000, description="messages committed in one transaction at most"
    )
    flush_interval_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=0.5, description="a batch is committed at the latest this long after its first message"
    )
    ack_wait_s: Annotated[float, Field(ge=10, le=3600)] = Field(
        default=120.0, description="JetStream redelivers messages not acked (= not committed) for this long"
    )
    merge_gap_s: Annotated[float, Field(gt=0, le=86_400)] = Field(
        default=30.0, description="detections of one label on one camera closer than this form one incident"
    )
    max_incidents: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=200, description="most incidents one search returns (the latest ones); each costs its chunks' and "
        "snapshot's presigned URLs"
    )
    max_event_chunks: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=100, description="most chunks an event of a search lists (a car parked for a day is covered by "
        "thousands; `chunks` gives them all)"
    )
    mqtt_bridge: bool = Field(
        default=True, description="republish every tracked-object event as JSON on <mqtt_prefix>.events.<cam>."
        "<label> (MQTT topic <mqtt_prefix>/events/<cam>/<label>); indexers of one deployment share the work"
    )
    mqtt_prefix: str = Field(
        default="spectare", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="first MQTT topic level of the JSON events; must differ from the deployment's name prefix",
    )
    mqtt_stale_after_s: Annotated[float, Field(gt=0, le=7 * 86_400)] = Field(
        default=300.0, description="events older than this when the bridge gets them (it was down) are not "
        "republished: an automation should not switch lights for a visitor of yesterday"
    )
    max_chunks: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=2_000, description="most chunks one `chunks` request returns (ask again from the last one's end)"
    )
    max_rows: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=10_000, description="row cap of `spectare sql` answers"
    )
    query_timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=10.0, description="a query running longer is interrupted and answered with a timeout error"
    )
    max_concurrent_queries: Annotated[int, Field(ge=1, le=64)] = Field(
        default=4, description="queries run at once; more wait their turn"
    )
    presign_expiry_s: Annotated[int, Field(ge=60, le=7 * 86_400)] = Field(
        default=3_600, description="lifetime of the presigned GET URLs in answers (S3 allows at most 7 days)"
    )
    presign_endpoint: str | None = Field(
        default=None, description="S3 host:port as users reach it, when that differs from s3.endpoint (e.g. a "
        "public name in front of MinIO); URLs are signed for this host"
    )
    memory_limit: str | None = Field(
        default=None, pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB memory limit, e.g. '2GB'; default DuckDB's own (80% of RAM)",
    )
    keep_days: Annotated[float, Field(gt=0, le=36_500)] = Field(
        default=14.0, description="default days plain continuous footage is kept (a camera may set its own)"
    )
    keep_event_days: Annotated[float, Field(gt=0, le=36_500)] = Field(
        default=30.0, description="default days footage around detections, the detections and their snapshots are "
        "kept (at least keep_days)"
    )
    max_gb: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="default cap on one camera's stored footage in GB (oldest plain footage goes "
        "first); none by default"
    )
    event_padding_s: Annotated[float, Field(ge=0, le=3_600)] = Field(
        default=10.0, description="a chunk within this many seconds of a detection counts as event footage"
    )
    retention_interval_s: Annotated[float, Field(ge=0, le=7 * 86_400)] = Field(
        default=3_600.0, description="seconds between retention sweeps; 0 switches the schedule off (`spectare "
        "retention run` still works)"
    )
    export_interval_s: Annotated[float, Field(ge=0, le=7 * 86_400)] = Field(
        default=3_600.0, description="seconds between Parquet exports to S3; 0 switches the schedule off"
    )
    export_prefix: str = Field(
        default="parquet", pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="key prefix of the Parquet export in the bucket: <prefix>/<table>/date=.../camera=.../*.parquet"
    )

    def database_path(self, settings: Settings) -> Path:
        return self.database or settings.state_dir / "index" / "spectare.duckdb"

    def consumer(self, stream_kind: str) -> str:
        return f"{self.consumer_prefix}_{stream_kind}"


def load_indexer_settings(**overrides: object) -> IndexerSettings:
    """IndexerSettings, with validation problems turned into one readable ConfigError."""
    return IndexerSettings.load(**overrides)
