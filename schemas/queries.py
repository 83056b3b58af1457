"""Requests to the indexer's query service and its answers: typed, versioned, msgpack like every message.

Each endpoint listens on `Names.index(<endpoint>)` (`index.search`, `index.events`, `index.footage_at`,
`index.chunks`, `index.sql`, `index.status`, under the deployment prefix) as a NATS micro service
(`Names.index_service`), request/reply. A request is one of the `*Request` messages below; a good answer is
the matching `*Response`; a refused or failed request is an error reply in the NATS micro convention: headers
`Nats-Service-Error` (one line for a person) and `Nats-Service-Error-Code` (`ErrorCode`), no body.

Times are Unix seconds (float) throughout, as in every other message.
"""

import math
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .messages import Camera, Message, NonNegInt
from .names import camera_name, label_token

PositiveInt = Annotated[int, Field(gt=0)]


class ErrorCode(StrEnum):
    """`Nats-Service-Error-Code` of an error reply."""

    BAD_REQUEST = "400"  # undecodable request, bad time range, refused SQL, SQL that fails
    NOT_FOUND = "404"  # unknown camera
    TOO_LARGE = "413"  # the answer would not fit in one NATS message
    TIMEOUT = "408"  # the query ran past the indexer's time limit and was interrupted
    INTERNAL = "500"  # a bug or a broken database: the indexer's log says more


class _Part(BaseModel):
    """A piece of a message (not a message on its own)."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class ChunkRef(_Part):
    """One stored MP4 chunk, with a presigned GET URL (valid for the indexer's `presign_expiry_s`)."""

    camera: Camera
    key: str
    start: float
    end: float
    bytes: NonNegInt
    url: str = Field(description="presigned GET URL of the object; plain HTTP(S), any client downloads it")


class GapRef(_Part):
    camera: Camera
    start: float
    end: float | None = Field(description="None while the camera is still away")
    reason: str


class Incident(_Part):
    """Detections of one label on one camera, each closer than the merge gap to the one before it."""

    camera: Camera
    label: str
    start: float = Field(description="time of the first detection")
    end: float = Field(description="time of the last detection")
    detections: PositiveInt
    max_score: float
    snapshot_key: str | None = Field(description="snapshot of the best-scoring detection that has one")
    snapshot_url: str | None
    chunks: tuple[ChunkRef, ...] = Field(description="chunks covering start..end, in time order")


class SearchRequest(Message):
    KIND: ClassVar[str] = "search_request"
    camera: str | None = None
    label: str | None = None
    start: float
    end: float
    min_score: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    limit: PositiveInt | None = Field(default=None, description="most incidents to return; None: the indexer's cap")

    @field_validator("camera")
    @classmethod
    def _valid_camera(cls, value: str | None) -> str | None:  # type: ignore[override]  # a search may name no camera
        return None if value is None else camera_name(value)

    @field_validator("label")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        return None if value is None else label_token(value)

    @model_validator(mode="after")
    def _range(self) -> "SearchRequest":
        _check_range(self.start, self.end)
        return self


class SearchResponse(Message):
    KIND: ClassVar[str] = "search_response"
    incidents: tuple[Incident, ...] = Field(description="in time order; the latest ones when truncated")
    total: NonNegInt = Field(description="incidents found, before the limit")
    merge_gap_s: float = Field(description="detections closer than this were merged into one incident")


class EventRef(_Part):
    """One tracked object (`schemas.events.ObjectEvent`'s life, as the index holds it): the fields of an
    Incident that apply, plus what the tracker tells."""

    camera: Camera
    object_id: str
    label: str
    start: float = Field(description="first_seen: the first keyframe the object was on")
    end: float = Field(description="last_seen as the latest message tells (a still object sends none)")
    max_score: float = Field(description="the object's top score")
    snapshot_key: str | None = Field(description="the object's best snapshot, as its latest message names it")
    snapshot_url: str | None
    chunks: tuple[ChunkRef, ...] = Field(description="chunks covering start..end, in time order (the first "
                                                     "`max_event_chunks` when `more_chunks`)")
    more_chunks: bool = Field(default=False, description="more chunks cover the object than listed: ask `chunks`")
    zones: tuple[str, ...] = Field(description="zones the object was in at its latest message")
    entered_zones: tuple[str, ...] = Field(description="every zone the object entered, in order")
    stationary: bool
    ended: bool = Field(description="its `end` came: it left (or was unseen for the camera's end_after_s)")


SearchKind = Literal["auto", "events", "incidents"]


class EventSearchRequest(Message):
    """Tracked objects overlapping start..end, the latest `limit` by first_seen. With `incidents`, also the
    incidents (today's merged detections) where the index has no events: cameras whose detector runs no tracker,
    and each camera's history before its first event."""

    KIND: ClassVar[str] = "event_search_request"
    camera: str | None = None
    label: str | None = None
    zone: str | None = Field(default=None, description="only objects that entered this zone (incidents have none)")
    start: float
    end: float
    min_score: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    limit: PositiveInt | None = Field(default=None, description="most events (and incidents) to return")
    incidents: bool = False

    @field_validator("camera")
    @classmethod
    def _valid_camera(cls, value: str | None) -> str | None:  # type: ignore[override]  # a search may name no camera
        return None if value is None else camera_name(value)

    @field_validator("label", "zone")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        return None if value is None else label_token(value)

    @model_validator(mode="after")
    def _range(self) -> "EventSearchRequest":
        _check_range(self.start, self.end)
        return self


class EventSearchResponse(Message):
    KIND: ClassVar[str] = "event_search_response"
    events: tuple[EventRef, ...] = Field(description="in order of first_seen; the latest ones when truncated")
    total: NonNegInt = Field(description="events found, before the limit")
    incidents: tuple[Incident, ...] = Field(default=(), description="asked for: incidents where no events exist")
    incidents_total: NonNegInt = 0
    merge_gap_s: float


class FootageAtRequest(Message):
    KIND: ClassVar[str] = "footage_at_request"
    camera: Camera
    time: float


class FootageAtResponse(Message):
    KIND: ClassVar[str] = "footage_at_response"
    camera: Camera
    time: float
    found: Literal["chunk", "gap", "nothing"]
    chunk: ChunkRef | None = None
    offset: float | None = Field(default=None, description="seconds from the chunk's start to `time`")
    gap: GapRef | None = None
    previous_end: float | None = Field(default=None, description="nothing recorded: where footage before ends")
    next_start: float | None = Field(default=None, description="nothing recorded: where footage after starts")


class ChunksRequest(Message):
    KIND: ClassVar[str] = "chunks_request"
    camera: Camera
    start: float
    end: float
    limit: PositiveInt | None = None

    @model_validator(mode="after")
    def _range(self) -> "ChunksRequest":
        _check_range(self.start, self.end)
        return self


class ChunksResponse(Message):
    KIND: ClassVar[str] = "chunks_response"
    chunks: tuple[ChunkRef, ...] = Field(description="chunks overlapping start..end, in time order")
    gaps: tuple[GapRef, ...] = Field(description="gaps overlapping start..end, in time order")
    truncated: bool = Field(description="more chunks than the limit: ask again from the last chunk's end")


class SqlRequest(Message):
    KIND: ClassVar[str] = "sql_request"
    sql: str = Field(min_length=1, max_length=100_000)
    max_rows: PositiveInt | None = Field(default=None, description="at most the indexer's own row cap")


class SqlResponse(Message):
    KIND: ClassVar[str] = "sql_response"
    columns: tuple[str, ...]
    types: tuple[str, ...] = Field(description="DuckDB type of each column")
    rows: tuple[tuple[Any, ...], ...] = Field(description="JSON-safe values: times and decimals as text or floats")
    truncated: bool = Field(description="the query had more rows than returned")
    elapsed_s: float


class StatusRequest(Message):
    KIND: ClassVar[str] = "status_request"


class StreamProgress(_Part):
    stream: str
    last_seq: NonNegInt = Field(description="last stream sequence committed to the index")
    messages: NonNegInt
    garbage: NonNegInt = Field(description="messages terminated as undecodable, unknown or inconsistent")


class StatusResponse(Message):
    KIND: ClassVar[str] = "status_response"
    database: str
    tables: dict[str, NonNegInt] = Field(description="rows per table")
    streams: tuple[StreamProgress, ...]
    latest_chunk_end: float | None
    latest_detection: float | None


class RetentionRequest(Message):
    """Run a retention sweep now (`dry_run`: only say what it would delete)."""

    KIND: ClassVar[str] = "retention_request"
    dry_run: bool = False


class CameraRetention(_Part):
    camera: Camera
    chunks: NonNegInt
    bytes: NonNegInt
    detections: NonNegInt


class RetentionResponse(Message):
    KIND: ClassVar[str] = "retention_response"
    dry_run: bool
    chunks: NonNegInt = Field(description="chunks deleted (or that would be): objects, rows and footage events")
    bytes: NonNegInt
    detections: NonNegInt = Field(description="detections past their camera's event retention")
    snapshots: NonNegInt
    resumed: NonNegInt = Field(description="queued deletions of an interrupted sweep finished first")
    cameras: tuple[CameraRetention, ...]
    seconds: float


class ExportRequest(Message):
    """Export to Parquet now what changed since the last export."""

    KIND: ClassVar[str] = "export_request"


class ExportResponse(Message):
    KIND: ClassVar[str] = "export_response"
    prefix: str = Field(description="key prefix in the bucket: <prefix>/<table>/date=.../camera=.../*.parquet")
    partitions: NonNegInt
    rows: NonNegInt
    files: NonNegInt
    bytes: NonNegInt
    seconds: float


def _check_range(start: float, end: float) -> None:
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError("start and end must be finite times")
    if end < start:
        raise ValueError("end is before start")
