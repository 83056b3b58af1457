"""Every message that travels between services: typed, versioned, msgpack on the wire.

Each message encodes as a msgpack map with two envelope keys, `kind` and `v`, beside its fields.
`decode` checks the kind, refuses versions it does not understand, and validates every field;
anything wrong raises SchemaError with one line saying what. Fields unknown to this version are
ignored, so a newer producer can add optional fields without breaking older consumers; a change
that older consumers cannot ignore bumps `VERSION`.
"""

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal, Self, TypeVar

import msgpack
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from spectare.core.errors import SchemaError

from .names import camera_name, label_token
from .zones import Mask, Zone, as_tuples

Camera = Annotated[str, Field(description="camera name (a subject token)")]
NonNegInt = Annotated[int, Field(ge=0)]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
TimeBase = tuple[Annotated[int, Field(gt=0)], Annotated[int, Field(gt=0)]]


class Message(BaseModel):
    """Base of all messages. Subclasses set KIND and VERSION."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    KIND: ClassVar[str]
    VERSION: ClassVar[int] = 1
    # Older versions this one reads as they are (their maps are valid today, new fields at their defaults).
    ALSO_READS: ClassVar[tuple[int, ...]] = ()

    @field_validator("camera", check_fields=False)
    @classmethod
    def _valid_camera(cls, value: str) -> str:
        return camera_name(value)

    def encode(self) -> bytes:
        body = self.model_dump(mode="python")
        return msgpack.packb({"kind": self.KIND, "v": self.VERSION, **body}, use_bin_type=True)

    @classmethod
    def decode(cls, data: bytes) -> Self:
        return cls.from_map(_unpack(data))

    @classmethod
    def from_map(cls, raw: dict) -> Self:
        kind, version = raw.get("kind"), raw.get("v")
        if kind != cls.KIND:
            raise SchemaError(f"expected a {cls.KIND} message, got kind {kind!r}")
        if not isinstance(version, int) or isinstance(version, bool):
            raise SchemaError(f"{cls.KIND} message without an integer version")
        if version != cls.VERSION and version not in cls.ALSO_READS:
            newer = "newer" if version > cls.VERSION else "older"
            raise SchemaError(
                f"{cls.KIND} message v{version} is {newer} than this Spectare understands (v{cls.VERSION})"
            )
        return cls.create(**{k: v for k, v in raw.items() if k not in ("kind", "v")})

    @classmethod
    def create(cls, **fields: object) -> Self:
        """Build and validate a message; raise SchemaError naming the first bad field (never its value,
        which may hold a camera password)."""
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "message"
            raise SchemaError(
                f"invalid {cls.KIND} v{cls.VERSION}: {where}: {first['msg']} ({exc.error_count()} error(s))"
            ) from None


M = TypeVar("M", bound=Message)
N = TypeVar("N", bound=Message)


def _unpack(data: bytes) -> dict:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SchemaError(f"expected bytes, got {type(data).__name__}")
    try:
        raw = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise SchemaError(f"not a msgpack message ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise SchemaError(f"expected a msgpack map, got {type(raw).__name__}")
    return raw


def unpack_message(data: bytes) -> dict:
    """The raw map of an encoded message (envelope included) for consumers that dispatch on its `kind` and then
    validate with `<Type>.from_map`; SchemaError for bytes that are not a msgpack map."""
    return _unpack(data)


def decode_one_of(data: bytes, first: type[M], second: type[N]) -> M | N:
    """Decode a message that may be either of two kinds (e.g. a Segment or a Gap on footage.<cam>)."""
    raw = _unpack(data)
    if raw.get("kind") == first.KIND:
        return first.from_map(raw)
    if raw.get("kind") == second.KIND:
        return second.from_map(raw)
    raise SchemaError(f"expected one of {first.KIND}, {second.KIND}, got kind {raw.get('kind')!r}")


class VideoTrack(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    codec: str = Field(description="FFmpeg codec name, e.g. h264, hevc")
    width: Annotated[int, Field(gt=0, le=16384)]
    height: Annotated[int, Field(gt=0, le=16384)]
    time_base: TimeBase = Field(description="(numerator, denominator) of packet pts/dts/duration")
    extradata: bytes = Field(default=b"", description="codec parameters as the demuxer gave them")
    fps: Annotated[float, Field(ge=0)] | None = Field(default=None, description="nominal frame rate")


class AudioTrack(BaseModel):
    """The audio recorded with the video: AAC (a camera's G.711 is transcoded by ingest), packets timed in samples."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    codec: str = Field(description="FFmpeg codec name of the packets on the bus: aac")
    sample_rate: Annotated[int, Field(gt=0)]
    channels: Annotated[int, Field(gt=0, le=64)]
    time_base: TimeBase = Field(description="(numerator, denominator) of audio packet pts/dts/duration: 1/sample_rate")
    extradata: bytes = Field(default=b"", description="AAC: the AudioSpecificConfig")


class StreamInfo(Message):
    """What a camera sends in one session; published first on every (re)connect."""

    KIND: ClassVar[str] = "stream_info"
    camera: Camera
    session: str = Field(min_length=1, max_length=64, description="one RTSP connection; the fencing token")
    started_at: float = Field(description="wall clock (Unix seconds) the session's time is anchored to")
    video: VideoTrack
    audio: AudioTrack | None = None


class Packet(Message):
    """One encoded packet, as demuxed (never decoded); for audio, consecutive AAC access units.

    v2 added `sizes` (several access units in one audio packet): a v1 reader would take them for one."""

    KIND: ClassVar[str] = "packet"
    VERSION: ClassVar[int] = 2
    ALSO_READS: ClassVar[tuple[int, ...]] = (1,)
    camera: Camera
    session: str = Field(min_length=1, max_length=64)
    seq: NonNegInt = Field(description="position in the session, from 0, no holes: video and audio share it")
    track: Literal["video", "audio"] = Field(
        default="video", description="audio: AAC access units of StreamInfo.audio, pts/dts/duration in its time base")
    pts: int | None
    dts: int | None
    duration: NonNegInt = Field(default=0, description="audio: of each access unit")
    keyframe: bool
    wall_time: float = Field(description="session anchor advanced by pts (Unix seconds); audio: of the first unit")
    data: bytes
    sizes: tuple[Annotated[int, Field(gt=0)], ...] = Field(
        default=(), max_length=4096,
        description="audio: the sizes of the access units back to back in `data`, unit n at pts + n * duration; "
        "empty: `data` is one")

    @model_validator(mode="after")
    def _units_fill_data(self) -> Self:
        if self.sizes and (self.track != "audio" or sum(self.sizes) != len(self.data) or not self.duration):
            raise ValueError("sizes are for audio packets with a duration, and must add up to the data's length")
        return self

    def access_units(self, time_base: float) -> list["AccessUnit"]:
        """An audio packet's access units with their times; `time_base`: StreamInfo.audio's, in seconds."""
        pts = self.pts if self.pts is not None else self.dts
        if not self.sizes:
            return [AccessUnit(pts, self.duration, self.wall_time, self.data)]
        units, at, step, data = [], 0, self.duration * time_base, self.data
        for n, size in enumerate(self.sizes):
            units.append(AccessUnit(None if pts is None else pts + n * self.duration, self.duration,
                                    self.wall_time + n * step, data[at:at + size]))
            at += size
        return units


@dataclass(frozen=True, slots=True)
class AccessUnit:
    """One audio access unit of a Packet (`Packet.access_units`)."""

    pts: int | None
    duration: int
    wall_time: float
    data: bytes


class PacketGroup(Message):
    """Consecutive packets of one session in one NATS message: a message costs more than a packet.

    Ingest starts a group at every keyframe, so chunk cuts (always at a keyframe) fall on message
    boundaries."""

    KIND: ClassVar[str] = "packet_group"
    VERSION: ClassVar[int] = 2  # its packets' version
    ALSO_READS: ClassVar[tuple[int, ...]] = (1,)
    camera: Camera
    session: str = Field(min_length=1, max_length=64)
    packets: tuple[Packet, ...] = Field(min_length=1, max_length=10_000)

    @field_validator("packets")
    @classmethod
    def _one_run(cls, packets: tuple[Packet, ...], info: ValidationInfo) -> tuple[Packet, ...]:
        camera, session = info.data.get("camera"), info.data.get("session")
        first = packets[0].seq
        for offset, packet in enumerate(packets):
            if (packet.camera, packet.session) != (camera, session):
                raise ValueError(f"packet {packet.seq} belongs to {packet.camera}/{packet.session}")
            if packet.seq != first + offset:
                raise ValueError(f"packet seqs must be consecutive from {first}; got {packet.seq} at {offset}")
        return packets

    def encode(self) -> bytes:
        # Inner packets travel as plain maps (their own envelopes would only repeat ours). A packet's __dict__ is
        # its fields, all plain values: the same map as model_dump at a tenth of its cost, ~60 packets a second
        # per camera with audio.
        return msgpack.packb(
            {"kind": self.KIND, "v": self.VERSION, "camera": self.camera, "session": self.session,
             "packets": [p.__dict__ for p in self.packets]},
            use_bin_type=True,
        )


class Keyframe(Message):
    """A video keyframe that decodes on its own: it carries the codec parameters."""

    KIND: ClassVar[str] = "keyframe"
    camera: Camera
    session: str = Field(min_length=1, max_length=64)
    seq: NonNegInt
    wall_time: float
    codec: str
    width: Annotated[int, Field(gt=0, le=16384)]
    height: Annotated[int, Field(gt=0, le=16384)]
    extradata: bytes = b""
    data: bytes


class Segment(Message):
    """One MP4 chunk stored in S3."""

    KIND: ClassVar[str] = "segment"
    camera: Camera
    bucket: str
    key: str
    session: str
    first_seq: NonNegInt
    last_seq: NonNegInt
    start: float = Field(description="wall time of the first frame (Unix seconds)")
    end: float = Field(description="wall time the last frame ends (Unix seconds)")
    frames: NonNegInt
    bytes: NonNegInt
    codec: str
    width: Annotated[int, Field(gt=0)]
    height: Annotated[int, Field(gt=0)]

    @property
    def duration(self) -> float:
        return self.end - self.start


class Gap(Message):
    """A stretch with no footage, announced explicitly (camera down, reconnect, failover)."""

    KIND: ClassVar[str] = "gap"
    camera: Camera
    start: float
    end: float | None = Field(default=None, description="None while the camera is still away")
    reason: str = Field(max_length=200)
    session: str | None = None


class Detection(Message):
    """One object found on one keyframe: (camera, session, seq, index) names it.

    `index` came later than the other fields and is optional, so it stayed v1 (this module's rule: a field older
    consumers can ignore does not bump the version). A detection published before it (no `index` key, kept in the
    DETECTIONS stream for its retention) decodes with `index` None; its index is then the last field of its
    `Nats-Msg-Id` (`<cam>:<session>:<seq>:<index>`, `msgids.parse_detection_id`), which is what the indexer falls
    back to. A detector always sets it, equal to that last field."""

    KIND: ClassVar[str] = "detection"
    camera: Camera
    time: float = Field(description="wall time of the keyframe (Unix seconds)")
    label: str
    class_id: NonNegInt
    score: Unit
    box: tuple[Unit, Unit, Unit, Unit] = Field(description="x1, y1, x2, y2 normalised to 0..1")
    model: str
    session: str
    seq: NonNegInt
    index: NonNegInt | None = Field(
        default=None, description="position among the keyframe's reported findings (score order, from 0); "
        "None: published before the field existed (the Msg-Id holds it)")
    snapshot_key: str | None = None

    @field_validator("label")
    @classmethod
    def _label_token(cls, value: str) -> str:
        return label_token(value)


class MotionState(Message):
    """What the motion gate remembers of a camera: a small grey picture of its last keyframe. Kept in the
    `motion` KV bucket, keyed by camera, so every detector replica compares against the same picture."""

    KIND: ClassVar[str] = "motion_state"
    camera: Camera
    session: str
    seq: NonNegInt
    wall_time: float
    width: Annotated[int, Field(gt=0, le=1024)]
    height: Annotated[int, Field(gt=0, le=1024)]
    pixels: bytes = Field(description="width*height grey levels, row by row")

    @field_validator("pixels")
    @classmethod
    def _size(cls, value: bytes, info: ValidationInfo) -> bytes:
        width, height = info.data.get("width"), info.data.get("height")
        if width and height and len(value) != width * height:
            raise ValueError(f"expected {width}x{height} = {width * height} bytes, got {len(value)}")
        return value


class CameraConfig(Message):
    """A registered camera, as stored in the `cameras` KV bucket (URL with its credentials)."""

    KIND: ClassVar[str] = "camera"
    name: str
    url: str = Field(min_length=1, max_length=2048, description="RTSP URL, credentials included")
    friendly_name: str = Field(default="", max_length=200)
    detect: bool = Field(default=True, description="run object detection on this camera's keyframes")
    segment_seconds: Annotated[int, Field(ge=1, le=3600)] = 10
    labels: tuple[str, ...] | None = Field(
        default=None, description="labels to report (e.g. person, car); None: the detector's default list"
    )
    min_score: Annotated[float, Field(ge=0.01, le=1.0)] | None = Field(
        default=None, description="lowest score reported; None: the detector's default"
    )
    motion_gate: bool = Field(default=True, description="detect only on keyframes that differ from the previous one")
    audio: Literal["copy", "off"] = Field(
        default="copy", description="copy: record the camera's audio track with the video (AAC as it comes, G.711 "
        "transcoded to AAC); off: video only")
    motion_threshold: Annotated[float, Field(ge=0.0, le=1.0)] | None = Field(
        default=None, description="share of the picture that must change to pass the gate; None: detector default"
    )
    keep_days: Annotated[float, Field(gt=0, le=36_500)] | None = Field(
        default=None, description="days plain footage is kept; None: the indexer's default"
    )
    keep_event_days: Annotated[float, Field(gt=0, le=36_500)] | None = Field(
        default=None, description="days footage around detections (and the detections) is kept; None: default"
    )
    max_gb: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="cap on this camera's stored footage in GB; None: the indexer's default"
    )
    created_at: float = 0.0
    updated_at: float = 0.0
    zones: Annotated[tuple[Zone, ...], BeforeValidator(as_tuples)] = Field(
        default=(), description="named polygons tagging the events of objects standing in them (`entered_zones`)")
    masks: Annotated[tuple[Mask, ...], BeforeValidator(as_tuples)] = Field(
        default=(), description="named polygons whose findings are dropped (and, with `motion`, their motion)")
    required_zones: Annotated[tuple[str, ...], BeforeValidator(as_tuples)] = Field(
        default=(), description="zones an object must enter before its `new` event; empty: anywhere")
    min_hits: Annotated[int, Field(ge=1, le=30)] | None = Field(
        default=None, description="keyframes an object must be seen on before its `new` event; None: detector's")
    end_after_s: Annotated[float, Field(ge=1, le=3600)] | None = Field(
        default=None, description="seconds unseen before an object's `end` event; None: the detector's default")
    stationary_after_s: Annotated[float, Field(ge=1, le=86_400)] | None = Field(
        default=None, description="seconds without moving before an object is stationary; None: detector's")

    # Written only when set, so a camera without them encodes byte for byte as before they existed.
    OMITTED_WHEN_UNSET: ClassVar[tuple[str, ...]] = (
        "audio", "zones", "masks", "required_zones", "min_hits", "end_after_s", "stationary_after_s")

    def encode(self) -> bytes:
        body = self.model_dump(mode="python")
        for name in self.OMITTED_WHEN_UNSET:
            if body[name] == type(self).model_fields[name].default:
                del body[name]
        return msgpack.packb({"kind": self.KIND, "v": self.VERSION, **body}, use_bin_type=True)

    @model_validator(mode="after")
    def _zone_names(self) -> Self:
        for what, polygons in (("zone", self.zones), ("mask", self.masks)):
            names = [p.name for p in polygons]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{what} names must be unique; {', '.join(twice)} given twice")
        known = {z.name for z in self.zones}
        unknown = [z for z in self.required_zones if z not in known]
        if unknown:
            raise ValueError(f"required zone(s) {', '.join(unknown)} not among the camera's zones "
                             f"({', '.join(sorted(known)) or 'none'})")
        return self

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return camera_name(value)

    @field_validator("labels")
    @classmethod
    def _label_tokens(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(label_token(label) for label in value)

    @field_validator("required_zones")
    @classmethod
    def _zone_tokens(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(label_token(zone) for zone in value)

    @field_validator("url")
    @classmethod
    def _rtsp_url(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in ("rtsp", "rtsps", "rtmp", "http", "https", "file"):
            raise ValueError("URL must start with rtsp://, rtsps://, rtmp://, http(s):// or file://")
        return value


class ApiToken(Message):
    """An API token as stored in the `tokens` KV bucket, keyed by `id`. Only a hash of the secret is kept: the
    token itself (`spt_<id>_<secret>`) is shown once, when it is created."""

    KIND: ClassVar[str] = "api_token"
    id: str = Field(pattern=r"^[a-f0-9]{12}$", description="public part of the token, the KV key")
    name: str = Field(default="", max_length=100, description="what the token is for, chosen by its creator")
    scope: Literal["read", "admin"] = Field(description="read: every GET; admin: everything")
    sha256: str = Field(pattern=r"^[a-f0-9]{64}$", description="hex SHA-256 of the whole token")
    created_at: float


class ApiSession(Message):
    """A browser session as stored in the `sessions` KV bucket, keyed by `id`: made by logging in with an API
    token, it acts for that token (whose scope it has) until `expires_at` or until the token is revoked. Only a
    hash of the cookie (`sps_<id>_<secret>`) is kept."""

    KIND: ClassVar[str] = "api_session"
    id: str = Field(pattern=r"^[a-f0-9]{16}$", description="public part of the cookie, the KV key")
    token_id: str = Field(pattern=r"^[a-f0-9]{12}$", description="the API token logged in with")
    scope: Literal["read", "admin"] = Field(description="the token's scope at login")
    sha256: str = Field(pattern=r"^[a-f0-9]{64}$", description="hex SHA-256 of the whole cookie value")
    created_at: float
    expires_at: float
