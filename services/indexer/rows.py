"""From stream messages to table rows: decoding, checks, and one batch's columns as Arrow tables. Pure (no I/O).

A message becomes rows, or a `Rejected` naming why it cannot be indexed (the consumer terminates and counts
those): undecodable bytes, a kind this indexer does not know, a subject that disagrees with the message, or
values a column cannot hold (a time that is not finite, a number past 64 bits). Checking here keeps one bad
message from failing a whole batch's transaction.
"""

import math
from dataclasses import dataclass, field

import pyarrow as pa

from spectare.core.errors import InvalidName, SchemaError
from spectare.schemas import Detection, Gap, Names, ObjectEvent, Segment, SubjectKind, parse_detection_id
from spectare.schemas.messages import unpack_message

MAX_BIGINT = 2**63 - 1
MAX_INT = 2**31 - 1

CHUNK_SCHEMA = pa.schema([
    ("camera", pa.string()), ("start_time", pa.float64()), ("end_time", pa.float64()), ("key", pa.string()),
    ("bucket", pa.string()), ("session", pa.string()), ("first_seq", pa.int64()), ("last_seq", pa.int64()),
    ("frames", pa.int64()), ("bytes", pa.int64()), ("codec", pa.string()), ("width", pa.int32()),
    ("height", pa.int32()), ("stream_seq", pa.int64()),
])
GAP_SCHEMA = pa.schema([
    ("camera", pa.string()), ("start_time", pa.float64()), ("end_time", pa.float64()), ("reason", pa.string()),
    ("session", pa.string()), ("stream_seq", pa.int64()),
])
DETECTION_SCHEMA = pa.schema([
    ("camera", pa.string()), ("time", pa.float64()), ("label", pa.string()), ("class_id", pa.int32()),
    ("score", pa.float64()), ("x1", pa.float64()), ("y1", pa.float64()), ("x2", pa.float64()), ("y2", pa.float64()),
    ("model", pa.string()), ("session", pa.string()), ("seq", pa.int64()), ("idx", pa.int32()),
    ("snapshot_key", pa.string()), ("stream_seq", pa.int64()),
])
# One row per ObjectEvent message; the writer merges them into one row per object (`events` table).
EVENT_SCHEMA = pa.schema([
    ("camera", pa.string()), ("object_id", pa.string()), ("type", pa.string()), ("label", pa.string()),
    ("time", pa.float64()), ("first_seen", pa.float64()), ("last_seen", pa.float64()),
    ("top_score", pa.float64()), ("snapshot_key", pa.string()), ("x1", pa.float64()), ("y1", pa.float64()),
    ("x2", pa.float64()), ("y2", pa.float64()), ("zones", pa.list_(pa.string())),
    ("entered_zones", pa.list_(pa.string())), ("stationary", pa.bool_()), ("seq", pa.int64()),
    ("session", pa.string()), ("keyframe_seq", pa.int64()), ("stream_seq", pa.int64()),
])


@dataclass(frozen=True)
class Rejected:
    """A message that cannot be indexed; `kind` groups them for counting and logging once."""

    kind: str  # "garbage" (undecodable), "unknown" (a kind this indexer does not index), "inconsistent"
    reason: str


def footage_row(subject: str, data: bytes, names: Names) -> Segment | Gap | Rejected:
    """A FOOTAGE message: a Segment or a Gap, or why not."""
    try:
        raw = unpack_message(data)
    except SchemaError as exc:
        return Rejected("garbage", str(exc))
    kind = raw.get("kind")
    if kind not in (Segment.KIND, Gap.KIND):
        return Rejected("unknown", f"a {kind!r} message is not indexed")
    try:
        item = Segment.from_map(raw) if kind == Segment.KIND else Gap.from_map(raw)
    except SchemaError as exc:
        return Rejected("garbage", str(exc))
    problem = _subject_problem(subject, names, SubjectKind.FOOTAGE, item.camera)
    times = (item.start, item.end) if isinstance(item, Segment) else (item.start, item.end or 0.0)
    if problem is None and not all(math.isfinite(t) for t in times):
        problem = "a time that is not finite"
    if problem is None and isinstance(item, Segment):
        if max(item.first_seq, item.last_seq, item.frames, item.bytes) > MAX_BIGINT or max(
                item.width, item.height) > MAX_INT:
            problem = "a number too large to store"
        elif item.end < item.start:
            problem = "a chunk that ends before it starts"
    return item if problem is None else Rejected("inconsistent", problem)


def detection_row(subject: str, data: bytes, msg_id: str | None,
                  names: Names) -> tuple[Detection, int | None] | Rejected:
    """A DETECTIONS message: the Detection and its index in the keyframe (`detection_index`), or why not."""
    try:
        raw = unpack_message(data)
    except SchemaError as exc:
        return Rejected("garbage", str(exc))
    if raw.get("kind") != Detection.KIND:
        return Rejected("unknown", f"a {raw.get('kind')!r} message is not indexed")
    try:
        detection = Detection.from_map(raw)
    except SchemaError as exc:
        return Rejected("garbage", str(exc))
    problem = _subject_problem(subject, names, SubjectKind.DETECTIONS, detection.camera, detection.label)
    if problem is None and not math.isfinite(detection.time):
        problem = "a time that is not finite"
    if problem is None and (detection.seq > MAX_BIGINT or max(detection.class_id, detection.index or 0) > MAX_INT):
        problem = "a number too large to store"
    if problem is not None:
        return Rejected("inconsistent", problem)
    return detection, detection_index(detection, msg_id)


def event_row(subject: str, data: bytes, names: Names) -> ObjectEvent | Rejected:
    """An EVENTS message: the ObjectEvent, or why not."""
    try:
        raw = unpack_message(data)
    except SchemaError as exc:
        return Rejected("garbage", str(exc))
    if raw.get("kind") != ObjectEvent.KIND:
        return Rejected("unknown", f"a {raw.get('kind')!r} message is not indexed")
    try:
        event = ObjectEvent.from_map(raw)
    except SchemaError as exc:
        return Rejected("garbage", str(exc))
    problem = _subject_problem(subject, names, SubjectKind.EVENTS, event.camera, event.label)
    if problem is None and not all(math.isfinite(t) for t in (event.time, event.first_seen, event.last_seen)):
        problem = "a time that is not finite"
    if problem is None and max(event.seq, event.keyframe_seq) > MAX_BIGINT:
        problem = "a number too large to store"
    if problem is None and event.last_seen < event.first_seen:
        problem = "an object last seen before it was first seen"
    return event if problem is None else Rejected("inconsistent", problem)


def detection_index(detection: Detection, msg_id: str | None) -> int | None:
    """The detection's index in its keyframe: its `index` field (every detector since the field exists sets it).
    A detection stored before then has none; its index is read back from its `Nats-Msg-Id`
    `<cam>:<session>:<seq>:<index>` (`spectare.schemas.parse_detection_id`), which must name the detection's own
    camera, session and seq. None when neither gives one (the writer then keeps it apart by stream sequence)."""
    if detection.index is not None:
        return detection.index
    parsed = parse_detection_id(msg_id)
    if parsed is None or (parsed.camera, parsed.session, parsed.seq) != (detection.camera, detection.session,
                                                                          detection.seq):
        return None
    return parsed.index if parsed.index <= MAX_INT else None


def _subject_problem(subject: str, names: Names, kind: SubjectKind, camera: str,
                     label: str | None = None) -> str | None:
    try:
        parsed = names.parse(subject)
    except InvalidName as exc:
        return str(exc)
    if parsed.kind != kind or parsed.camera != camera or parsed.label != label:
        return f"message of camera {camera!r}{f' label {label!r}' if label else ''} on subject {subject!r}"
    return None


@dataclass
class StreamTally:
    """What one batch took from one stream."""

    last_seq: int = 0
    messages: int = 0
    garbage: int = 0


@dataclass
class Batch:
    """Rows of one transaction, column by column, and how far each stream got."""

    chunks: dict[str, list] = field(default_factory=lambda: {name: [] for name in CHUNK_SCHEMA.names})
    gaps: dict[str, list] = field(default_factory=lambda: {name: [] for name in GAP_SCHEMA.names})
    detections: dict[str, list] = field(default_factory=lambda: {name: [] for name in DETECTION_SCHEMA.names})
    events: dict[str, list] = field(default_factory=lambda: {name: [] for name in EVENT_SCHEMA.names})
    streams: dict[str, StreamTally] = field(default_factory=dict)

    def __len__(self) -> int:
        return (len(self.chunks["key"]) + len(self.gaps["camera"]) + len(self.detections["camera"])
                + len(self.events["camera"]))

    def taken(self, stream: str, stream_seq: int, rejected: bool = False) -> None:
        tally = self.streams.setdefault(stream, StreamTally())
        tally.last_seq = max(tally.last_seq, stream_seq)
        tally.messages += 1
        tally.garbage += rejected

    def add_segment(self, s: Segment, stream_seq: int) -> None:
        _append(self.chunks, (s.camera, s.start, s.end, s.key, s.bucket, s.session, s.first_seq, s.last_seq, s.frames,
                              s.bytes, s.codec, s.width, s.height, stream_seq))

    def add_gap(self, g: Gap, stream_seq: int) -> None:
        _append(self.gaps, (g.camera, g.start, g.end, g.reason, g.session, stream_seq))

    def add_detection(self, d: Detection, idx: int | None, stream_seq: int) -> None:
        x1, y1, x2, y2 = d.box
        _append(self.detections, (d.camera, d.time, d.label, d.class_id, d.score, x1, y1, x2, y2, d.model, d.session,
                                  d.seq, idx, d.snapshot_key, stream_seq))

    def add_event(self, e: ObjectEvent, stream_seq: int) -> None:
        x1, y1, x2, y2 = e.box
        _append(self.events, (e.camera, e.object_id, e.type, e.label, e.time, e.first_seen, e.last_seen, e.top_score,
                              e.snapshot_key, x1, y1, x2, y2, list(e.zones), list(e.entered_zones), e.stationary,
                              e.seq, e.session, e.keyframe_seq, stream_seq))

    def tables(self) -> tuple[pa.Table, pa.Table, pa.Table]:
        """(chunks, gaps, detections) as Arrow tables."""
        return (pa.Table.from_pydict(self.chunks, schema=CHUNK_SCHEMA),
                pa.Table.from_pydict(self.gaps, schema=GAP_SCHEMA),
                pa.Table.from_pydict(self.detections, schema=DETECTION_SCHEMA))

    def events_table(self) -> pa.Table:
        return pa.Table.from_pydict(self.events, schema=EVENT_SCHEMA)


def _append(columns: dict[str, list], values: tuple) -> None:
    for column, value in zip(columns.values(), values, strict=True):
        column.append(value)
