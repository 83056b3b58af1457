"""Camera names, labels, and every subject, stream and bucket name, built and parsed in one place.

A camera name is a NATS subject token and an S3 key part at once, so it is validated, never
mangled: `[a-z0-9][a-z0-9_-]{0,62}`. Labels become tokens the same way after lower-casing and
turning spaces into underscores (`traffic light` -> `traffic_light`). Every name Spectare uses
on the bus is derived from one optional prefix, so several deployments can share a NATS account.
"""

import re
from dataclasses import dataclass
from enum import StrEnum

from spectare.core.errors import InvalidName

_TOKEN = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
TOKEN_RULE = "1-63 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"


def camera_name(name: str) -> str:
    """Return name if it is a valid camera name, else raise InvalidName saying why."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise InvalidName(f"invalid camera name {name!r}: use {TOKEN_RULE}")
    return name


def label_token(label: str) -> str:
    """Turn a detector label into a subject token (`Traffic light` -> `traffic_light`)."""
    token = label.strip().lower().replace(" ", "_") if isinstance(label, str) else label
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise InvalidName(f"invalid label {label!r}: after lower-casing and '_' for spaces use {TOKEN_RULE}")
    return token


def object_token(value: str) -> str:
    """A tracked object's id as it travels in subjects and Msg-Ids (`[a-z0-9][a-z0-9_-]{0,62}`)."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise InvalidName(f"invalid object id {value!r}: use {TOKEN_RULE}")
    return value


class SubjectKind(StrEnum):
    INFO = "info"
    PACKETS = "packets"
    KEYFRAMES = "keyframes"
    FOOTAGE = "footage"
    DETECTIONS = "detections"
    EVENTS = "events"


@dataclass(frozen=True)
class ParsedSubject:
    kind: SubjectKind
    camera: str
    label: str | None = None


@dataclass(frozen=True)
class Names:
    """All bus names for one deployment; `prefix` ('' by default) namespaces every one of them."""

    prefix: str = ""

    def __post_init__(self) -> None:
        if self.prefix and not _TOKEN.fullmatch(self.prefix):
            raise InvalidName(f"invalid name prefix {self.prefix!r}: use {TOKEN_RULE}")

    def _subject(self, *tokens: str) -> str:
        return ".".join((self.prefix, *tokens) if self.prefix else tokens)

    def _upper(self, name: str) -> str:
        return f"{self.prefix.upper().replace('-', '_')}_{name}" if self.prefix else name

    def _lower(self, name: str) -> str:
        return f"{self.prefix}_{name}" if self.prefix else name

    # Subjects. `camera="*"` gives the wildcard form used by stream configs and consumers.
    def info(self, camera: str) -> str:
        return self._subject("cams", _cam_or_wildcard(camera), "info")

    def packets(self, camera: str) -> str:
        return self._subject("cams", _cam_or_wildcard(camera), "packets")

    def keyframes(self, camera: str) -> str:
        return self._subject("cams", _cam_or_wildcard(camera), "keyframes")

    def footage(self, camera: str) -> str:
        return self._subject("footage", _cam_or_wildcard(camera))

    def detections(self, camera: str, label: str = "*") -> str:
        return self._subject("detections", _cam_or_wildcard(camera), "*" if label == "*" else label_token(label))

    def events(self, camera: str, label: str = "*") -> str:
        """Tracked-object events (`schemas.events.ObjectEvent`) of a camera and label."""
        return self._subject("events", _cam_or_wildcard(camera), "*" if label == "*" else label_token(label))

    def index(self, endpoint: str) -> str:
        """Subject of one endpoint of the indexer's query service (`index.search`, `index.sql`, ...)."""
        if not _TOKEN.fullmatch(endpoint):
            raise InvalidName(f"invalid query endpoint {endpoint!r}: use {TOKEN_RULE}")
        return self._subject("index", endpoint)

    @property
    def index_service(self) -> str:
        """Name of the indexer's NATS micro service (`$SRV.PING.<name>` finds running indexers)."""
        return self._lower("spectare_index")

    def parse(self, subject: str) -> ParsedSubject:
        """Parse a concrete subject of this deployment; raise InvalidName for anything else."""
        tokens = subject.split(".")
        if self.prefix:
            if tokens[:1] != [self.prefix]:
                raise InvalidName(f"subject {subject!r} is outside prefix {self.prefix!r}")
            tokens = tokens[1:]
        match tokens:
            case ["cams", cam, ("info" | "packets" | "keyframes") as kind]:
                return ParsedSubject(SubjectKind(kind), camera_name(cam))
            case ["footage", cam]:
                return ParsedSubject(SubjectKind.FOOTAGE, camera_name(cam))
            case ["detections", cam, label]:
                return ParsedSubject(SubjectKind.DETECTIONS, camera_name(cam), label_token(label))
            case ["events", cam, label]:
                return ParsedSubject(SubjectKind.EVENTS, camera_name(cam), label_token(label))
        raise InvalidName(f"subject {subject!r} is not a Spectare subject")

    # JetStream streams and KV buckets.
    @property
    def media_stream(self) -> str:
        return self._upper("MEDIA")

    @property
    def keyframes_stream(self) -> str:
        return self._upper("KEYFRAMES")

    @property
    def footage_stream(self) -> str:
        return self._upper("FOOTAGE")

    @property
    def detections_stream(self) -> str:
        return self._upper("DETECTIONS")

    @property
    def events_stream(self) -> str:
        return self._upper("EVENTS")

    @property
    def cameras_bucket(self) -> str:
        return self._lower("cameras")

    @property
    def leases_bucket(self) -> str:
        return self._lower("leases")

    @property
    def motion_bucket(self) -> str:
        return self._lower("motion")

    @property
    def tracks_bucket(self) -> str:
        """The detector's tracker state per camera (`TrackerState` by camera name), shared by its replicas."""
        return self._lower("tracks")

    @property
    def status_bucket(self) -> str:
        """What ingest reports of each camera it holds (`CameraStatus` by camera name)."""
        return self._lower("camera_status")

    @property
    def tokens_bucket(self) -> str:
        """API tokens (`ApiToken` by token id; only a hash of each secret)."""
        return self._lower("tokens")

    @property
    def sessions_bucket(self) -> str:
        """Browser sessions (`ApiSession` by session id; only a hash of each cookie)."""
        return self._lower("sessions")

    @property
    def live_bucket(self) -> str:
        """Cameras someone watches live: `live_mark_key(camera, holder)` -> empty value (see `spectare.core.live`)."""
        return self._lower("live")


def live_mark_key(camera: str, holder: str) -> str:
    """The key an API process puts while it streams `camera` live (`<camera>.<holder>`; holder: a token)."""
    return f"{camera_name(camera)}.{_token(holder, 'live mark holder')}"


def live_mark_camera(key: str) -> str:
    """The camera of a live mark key; InvalidName for any other key."""
    camera, dot, holder = key.partition(".")
    if not dot:
        raise InvalidName(f"live mark key {key!r} is not <camera>.<holder>")
    _token(holder, "live mark holder")
    return camera_name(camera)


def _token(value: str, what: str) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise InvalidName(f"invalid {what} {value!r}: use {TOKEN_RULE}")
    return value


def _cam_or_wildcard(camera: str) -> str:
    return camera if camera == "*" else camera_name(camera)
