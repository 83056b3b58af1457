"""Every `Nats-Msg-Id` Spectare publishes, built and parsed in one place.

JetStream drops a publish whose Msg-Id it has already stored within the stream's duplicate window, so a retry,
a resend after a lost ack or a rebuilt chunk after a crash must compute the same id as the first try, and the
formats must stay byte-identical across releases (the streams hold ids written by older ones):

- `stream_info_id` / StreamInfoId, ingest, `cams.<cam>.info`: `<cam>:<session>:info`, then `...:info:<n>`
- `packets_id` / PacketsId, ingest, `cams.<cam>.packets`: `<cam>:<session>:<first seq>`
- `keyframe_id` / KeyframeId, ingest, `cams.<cam>.keyframes`: `<cam>:<session>:<seq>`
- `segment_id` / SegmentId, segmenter, `footage.<cam>` (Segment): `<cam>:<session>:<first_seq>`
- `gap_id` / GapId, segmenter, `footage.<cam>` (Gap): `<cam>:gap:<start>:<end or open>`
- `detection_id` / DetectionId, detector, `detections.<cam>.<label>`: `<cam>:<session>:<seq>:<index>`
- `event_id`, detector's tracker, `events.<cam>.<label>` (ObjectEvent): `<cam>:<object id>:<seq>`

Each `<kind>_id(...)` builds the string; `parse_<kind>_id(msg_id)` gives back its parts as the typed value (whose
`str()` is the id again).

- Numbers are plain decimal (`12`, never `012` or `+12`); `<first seq>` is the seq of a PacketGroup's first packet
  (or of a single Packet); `<n>` counts StreamInfo repeats in the session from 1; `<index>` is the finding's
  position in its keyframe's reported findings (score order, from 0), the same as `Detection.index`. Gap times are
  Unix seconds with exactly six decimals (`1795845752.345000`, Python's `f"{t:.6f}"`), end `open` while the camera
  is away; a closed gap is a new id, so the closing event is stored beside the open one.
- A camera name holds no `:`, a session may (the schemas allow any non-empty text): parsers take the camera from
  the first field and the numbers from the last ones, so every id a builder makes parses back to its parts. Ids of
  different kinds are told apart by their subject, not their text (a packets id and a keyframe id look alike);
  the one text that two kinds on one stream could share is a StreamInfo repeat `<cam>:<s>:info:<n>` and the
  packets id of a session named `<s>:info`, which ingest's sessions (`<hex>-<hex>`) never are.
- Builders check their parts (a valid camera name, a non-empty session, numbers >= 0) and raise ValueError (or
  InvalidName for the camera) otherwise. A parser accepts exactly the ids its builder makes (`str()` of what it
  returns is the id again) and returns None for anything else (no id, another format, `012`, an empty session):
  a Msg-Id is a header any client can set, so reading a strange one is the reader's business, never an
  exception. `camera_of` gives the camera of any of them.
"""

import re
from dataclasses import dataclass

from .names import _TOKEN as _CAMERA
from .names import camera_name, object_token

_NUMBER = re.compile(r"0|[1-9][0-9]*")
_TIME = re.compile(r"-?[0-9]+\.[0-9]{6}")


@dataclass(frozen=True, slots=True)
class StreamInfoId:
    """`<cam>:<session>:info` (repeat 0, the session's first StreamInfo) or `<cam>:<session>:info:<repeat>`."""

    camera: str
    session: str
    repeat: int = 0

    def __str__(self) -> str:
        return stream_info_id(self.camera, self.session, self.repeat)


@dataclass(frozen=True, slots=True)
class PacketsId:
    """`<cam>:<session>:<first seq>`: a PacketGroup (or a single Packet) on `cams.<cam>.packets`."""

    camera: str
    session: str
    first_seq: int

    def __str__(self) -> str:
        return packets_id(self.camera, self.session, self.first_seq)


@dataclass(frozen=True, slots=True)
class KeyframeId:
    """`<cam>:<session>:<seq>`: a Keyframe on `cams.<cam>.keyframes`."""

    camera: str
    session: str
    seq: int

    def __str__(self) -> str:
        return keyframe_id(self.camera, self.session, self.seq)


@dataclass(frozen=True, slots=True)
class SegmentId:
    """`<cam>:<session>:<first_seq>`: a Segment (one chunk) on `footage.<cam>`."""

    camera: str
    session: str
    first_seq: int

    def __str__(self) -> str:
        return segment_id(self.camera, self.session, self.first_seq)


@dataclass(frozen=True, slots=True)
class GapId:
    """`<cam>:gap:<start>:<end|open>`: a Gap on `footage.<cam>`; times as the id holds them (to the microsecond)."""

    camera: str
    start: float
    end: float | None  # None: `open`, the camera is still away

    def __str__(self) -> str:
        return gap_id(self.camera, self.start, self.end)


@dataclass(frozen=True, slots=True)
class DetectionId:
    """`<cam>:<session>:<seq>:<index>`: the index-th reported finding of keyframe (session, seq)."""

    camera: str
    session: str
    seq: int
    index: int

    def __str__(self) -> str:
        return detection_id(self.camera, self.session, self.seq, self.index)


# -- building ------------------------------------------------------------------------------------------------------


def stream_info_id(camera: str, session: str, repeat: int = 0) -> str:
    """Msg-Id of a session's StreamInfo: `<cam>:<session>:info` the first time, `<cam>:<session>:info:<repeat>`
    for the repeat-th re-send (from 1) within the session."""
    base = f"{_prefix(camera, session)}info"
    return base if _number(repeat, "repeat") == 0 else f"{base}:{repeat}"


def packets_id(camera: str, session: str, first_seq: int) -> str:
    """Msg-Id of a PacketGroup (or a single Packet): `<cam>:<session>:<seq of its first packet>`."""
    return f"{_prefix(camera, session)}{_number(first_seq, 'first_seq')}"


def keyframe_id(camera: str, session: str, seq: int) -> str:
    """Msg-Id of a Keyframe: `<cam>:<session>:<seq>`."""
    return f"{_prefix(camera, session)}{_number(seq, 'seq')}"


def segment_id(camera: str, session: str, first_seq: int) -> str:
    """Msg-Id of a Segment event: `<cam>:<session>:<first_seq>` (the chunk's first packet)."""
    return f"{_prefix(camera, session)}{_number(first_seq, 'first_seq')}"


def gap_id(camera: str, start: float, end: float | None) -> str:
    """Msg-Id of a Gap event: `<cam>:gap:<start>:<end>`, times with six decimals, end `open` when None."""
    camera_name(camera)
    for name, value in (("start", start), ("end", start if end is None else end)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"gap {name} must be a number, got {type(value).__name__}")
    return f"{camera}:gap:{start:.6f}:{'open' if end is None else f'{end:.6f}'}"


def detection_id(camera: str, session: str, seq: int, index: int) -> str:
    """Msg-Id of a Detection: `<cam>:<session>:<seq>:<index>`, the index-th reported finding of keyframe seq."""
    return f"{_prefix(camera, session)}{_number(seq, 'seq')}:{_number(index, 'index')}"


def event_id(camera: str, object_id: str, seq: int) -> str:
    """Msg-Id of an ObjectEvent: `<cam>:<object id>:<seq>`, the seq-th message of one tracked object."""
    camera_name(camera)
    return f"{camera}:{object_token(object_id)}:{_number(seq, 'seq')}"


def _prefix(camera: str, session: str) -> str:
    camera_name(camera)
    if not isinstance(session, str) or not session:
        raise ValueError("a Msg-Id needs a non-empty session")
    return f"{camera}:{session}:"


def _number(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {value!r}")
    return value


# -- parsing -------------------------------------------------------------------------------------------------------


def camera_of(msg_id: str | None) -> str | None:
    """The camera every Spectare Msg-Id starts with (the text before the first `:`), None when it is not one."""
    head = msg_id.split(":", 1)[0] if isinstance(msg_id, str) and ":" in msg_id else None
    return head if head is not None and _CAMERA.fullmatch(head) else None


def parse_stream_info_id(msg_id: str | None) -> StreamInfoId | None:
    fields = _fields(msg_id, 3)
    if fields is None:
        return None
    if fields[-1] == "info":
        session, repeat = ":".join(fields[1:-1]), 0
    elif len(fields) >= 4 and fields[-2] == "info" and _NUMBER.fullmatch(fields[-1]) and fields[-1] != "0":
        session, repeat = ":".join(fields[1:-2]), int(fields[-1])
    else:
        return None
    return StreamInfoId(fields[0], session, repeat) if session else None


def parse_packets_id(msg_id: str | None) -> PacketsId | None:
    parts = _session_and_numbers(msg_id, 1)
    return None if parts is None else PacketsId(parts[0], parts[1], parts[2])


def parse_keyframe_id(msg_id: str | None) -> KeyframeId | None:
    parts = _session_and_numbers(msg_id, 1)
    return None if parts is None else KeyframeId(parts[0], parts[1], parts[2])


def parse_segment_id(msg_id: str | None) -> SegmentId | None:
    parts = _session_and_numbers(msg_id, 1)
    return None if parts is None else SegmentId(parts[0], parts[1], parts[2])


def parse_gap_id(msg_id: str | None) -> GapId | None:
    fields = _fields(msg_id, 4)
    if fields is None or len(fields) != 4 or fields[1] != "gap" or not _TIME.fullmatch(fields[2]):
        return None
    if fields[3] != "open" and not _TIME.fullmatch(fields[3]):
        return None
    gap = GapId(fields[0], float(fields[2]), None if fields[3] == "open" else float(fields[3]))
    return gap if str(gap) == msg_id else None  # `00.500000` or a time past a double's microseconds: not ours


def parse_detection_id(msg_id: str | None) -> DetectionId | None:
    parts = _session_and_numbers(msg_id, 2)
    return None if parts is None else DetectionId(parts[0], parts[1], parts[2], parts[3])


def _fields(msg_id: str | None, at_least: int) -> list[str] | None:
    """The `:`-separated fields of an id that starts with a valid camera name and has at least `at_least`
    fields; None otherwise."""
    if not isinstance(msg_id, str):
        return None
    fields = msg_id.split(":")
    if len(fields) < at_least or not _CAMERA.fullmatch(fields[0]):
        return None
    return fields


def _session_and_numbers(msg_id: str | None, numbers: int) -> tuple | None:
    """(camera, session, *numbers) of `<cam>:<session>:<n1>[:<n2>...]`, the session being everything between the
    camera and the last `numbers` fields; None when any of those is not a plain decimal."""
    fields = _fields(msg_id, 2 + numbers)
    if fields is None or not all(_NUMBER.fullmatch(f) for f in fields[-numbers:]):
        return None
    session = ":".join(fields[1:-numbers])
    return (fields[0], session, *(int(f) for f in fields[-numbers:])) if session else None

