"""Request and response bodies of the HTTP API.

Camera bodies take their fields, bounds and descriptions from `CameraConfig` (the registry's message), so the
API accepts exactly what the registry stores; requests are strict (no "10" for 10, no unknown fields, no
Infinity/NaN) and anything the message's own validators refuse (names, labels, URL schemes) is refused with
its one-line reason. Responses never carry a URL password.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from spectare.core.redact import redact
from spectare.schemas import CameraConfig, CameraState, ErrorKind
from spectare.schemas.names import TOKEN_RULE

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
CameraName = Annotated[str, Field(pattern=NAME_PATTERN, description=f"camera name: {TOKEN_RULE}")]
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_ -]{0,62}$"  # what label_token accepts, without surrounding spaces
URL_PATTERN = r"^([Rr][Tt][Ss][Pp][Ss]?|[Rr][Tt][Mm][Pp]|[Hh][Tt][Tt][Pp][Ss]?|[Ff][Ii][Ll][Ee])://"
Label = Annotated[str, Field(pattern=LABEL_PATTERN, description="a label, e.g. person, car, traffic_light")]

# Fields a client sets; the name comes from the path (or the POST body), the times from the registry.
EDITABLE = tuple(f for f in CameraConfig.model_fields if f not in ("name", "created_at", "updated_at"))
NULLABLE = frozenset(f for f in EDITABLE if CameraConfig.model_fields[f].default is None)
_REQUEST = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _annotation(name: str) -> Any:
    if name == "labels":  # a JSON array (the message keeps a tuple)
        return list[Label] | None
    info = CameraConfig.model_fields[name]
    if name == "url":  # the schemes CameraConfig accepts, stated in the schema too
        return Annotated[info.annotation, *info.metadata, Field(pattern=URL_PATTERN)]
    return Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation


def _description(name: str) -> str | None:
    info = CameraConfig.model_fields[name]
    if name == "url":
        return ("stream URL, credentials included (rtsp://user:password@host/path); responses show the password as "
                "***, and sending back the *** form keeps the stored password")
    if name == "labels":
        return "labels to report (person, car, ...); [] every label; null the detector's default list"
    return info.description


def _camera_fields(optional: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in EDITABLE:
        info = CameraConfig.model_fields[name]
        if optional:
            fields[name] = (_annotation(name) | None, Field(default=None, description=_description(name)))
        elif info.is_required():
            fields[name] = (_annotation(name), Field(description=_description(name)))
        else:
            fields[name] = (_annotation(name), Field(default=info.default, description=_description(name)))
    return fields


CameraBody = create_model(
    "CameraBody", __config__=_REQUEST, __doc__="A camera's settings (PUT replaces all of them; unset ones take "
    "their defaults).", **_camera_fields(optional=False),
)
CameraCreate = create_model(
    "CameraCreate", __config__=_REQUEST, __doc__="A new camera.",
    name=(CameraName, Field(description=f"camera name: {TOKEN_RULE}")), **_camera_fields(optional=False),
)
CameraPatch = create_model(
    "CameraPatch", __config__=_REQUEST, __doc__="Fields to change; fields left out keep their value, null puts an "
    f"optional field ({', '.join(sorted(NULLABLE))}) back to its default.", **_camera_fields(optional=True),
)


class CameraView(BaseModel):
    """A registered camera as the API shows it: the URL's password replaced by ***."""

    name: str
    url: str = Field(description="stream URL with the password shown as ***")
    friendly_name: str
    detect: bool
    segment_seconds: int
    labels: list[str] | None
    min_score: float | None
    motion_gate: bool
    motion_threshold: float | None
    audio: str = Field(description="copy: the camera's audio is recorded with the video; off: video only")
    keep_days: float | None
    keep_event_days: float | None
    max_gb: float | None
    created_at: str = Field(description="ISO 8601, UTC")
    updated_at: str = Field(description="ISO 8601, UTC")


class Problem(BaseModel):
    """Every error answer: one line saying what is wrong (and, for bad input, where)."""

    detail: str
    errors: list[dict[str, Any]] | None = Field(default=None, description="bad input: each field and what is wrong")


class Check(BaseModel):
    ok: bool
    detail: str


class Health(BaseModel):
    nats: Check
    s3: Check
    indexer: Check


class CameraCounts(BaseModel):
    total: int
    recording: int = Field(description="an ingest worker holds the lease and packets arrived within stale_after_s")
    camera_away: int = Field(description="an ingest worker holds the lease but no packet came for stale_after_s")
    orphaned: int = Field(description="no ingest worker holds the lease")


class IngestStatus(BaseModel):
    """What the ingest worker holding the camera says about it (the `camera_status` bucket's CameraStatus)."""

    worker: str = Field(description="the ingest worker that said it")
    state: CameraState = Field(description="connecting, streaming, retrying (the last attempt failed) or stopped")
    error_kind: ErrorKind | None = Field(description="why the last attempt failed: refused, unreachable, timeout, "
                                         "unauthorized, not_found, no_video, ended, unsupported, other; null: none")
    error: str | None = Field(description="the failure in one line (URL passwords as ***)")
    since: float = Field(description="when this state began, Unix seconds")
    attempts: int = Field(description="failed attempts in a row")
    updated_at: float = Field(description="when the worker last wrote it, Unix seconds")


class CameraStats(BaseModel):
    name: str
    state: Literal["recording", "camera_away", "orphaned"] = Field(
        description="recording: a worker holds the lease and packets are fresh; camera_away: a worker holds it but "
        "no packet came for stale_after_s (ingest says why); orphaned: no ingest worker holds it")
    ingest: IngestStatus | None = Field(description="the holding worker's account of the camera; null: none yet")
    ingest_worker: str | None = Field(description="the ingest worker holding the camera's lease")
    segmenter_worker: str | None
    last_packet_age_s: float | None = Field(description="seconds since the last packet was stored; null: none kept")
    fps: float | None = Field(description="packets per second over the last rate_window_s")
    bitrate_bps: float | None = Field(description="bits per second stored over the last rate_window_s")
    chunks_last_hour: int | None = Field(description="MP4 chunks ending in the last hour; null: unknown")


class ConsumerLag(BaseModel):
    stream: str
    consumer: str
    pending: int = Field(description="messages not yet delivered")
    ack_pending: int = Field(description="messages delivered, not yet acknowledged")
    lag: int = Field(description="pending + ack_pending")


class Storage(BaseModel):
    source: Literal["indexer", "unavailable"]
    footage_bytes: int | None
    footage_chunks: int | None
    snapshots: int | None = Field(description="snapshot JPEGs referenced by detections (their sizes are not indexed)")


class Scaling(BaseModel):
    cameras: int
    max_cameras_per_worker: int
    ingest_workers_needed: int = Field(description="ceil(cameras / max_cameras_per_worker)")
    ingest_workers_live: int = Field(description="ingest workers announcing themselves in the leases bucket")


class Stats(BaseModel):
    time: float = Field(description="when measured, Unix seconds")
    health: Health
    cameras: CameraCounts
    per_camera: list[CameraStats]
    consumers: list[ConsumerLag]
    storage: Storage
    scaling: Scaling


class ClipMade(BaseModel):
    camera: str
    key: str = Field(description="object key in the bucket")
    url: str = Field(description="presigned GET URL of the MP4")
    expires_in_s: int
    start: float = Field(description="wall time of the first frame (a keyframe at or before the requested start)")
    end: float
    frames: int
    chunks: int
    bytes: int
    gaps: list[dict[str, Any]] = Field(description="stretches without footage inside the clip")


class TokenInfo(BaseModel):
    id: str
    name: str
    scope: str


def camera_view(camera: CameraConfig) -> dict[str, Any]:
    from spectare.core.registry import public_view

    view = public_view(camera)
    view["labels"] = None if camera.labels is None else list(camera.labels)
    view["url"] = redact(camera.url)
    return view
