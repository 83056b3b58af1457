"""Msg-Ids (`spectare.schemas.msgids`): the formats byte for byte, round trips, malformed ids (table-driven and
hypothesis, no I/O)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spectare.core.errors import InvalidName
from spectare.schemas import (
    DetectionId,
    GapId,
    KeyframeId,
    PacketsId,
    SegmentId,
    StreamInfoId,
    camera_of,
    detection_id,
    gap_id,
    keyframe_id,
    packets_id,
    parse_detection_id,
    parse_gap_id,
    parse_keyframe_id,
    parse_packets_id,
    parse_segment_id,
    parse_stream_info_id,
    segment_id,
    stream_info_id,
)

# (id as built, the literal it must be — what the streams already hold —, parser, what it parses to)
FORMATS = [
    (stream_info_id("porch", "1a-0"), "porch:1a-0:info", parse_stream_info_id, StreamInfoId("porch", "1a-0", 0)),
    (stream_info_id("porch", "1a-0", 3), "porch:1a-0:info:3", parse_stream_info_id, StreamInfoId("porch", "1a-0", 3)),
    (stream_info_id("porch", "1a-0", 12), "porch:1a-0:info:12", parse_stream_info_id,
     StreamInfoId("porch", "1a-0", 12)),
    (packets_id("porch", "1a-0", 0), "porch:1a-0:0", parse_packets_id, PacketsId("porch", "1a-0", 0)),
    (packets_id("cam-1", "1a-0", 120), "cam-1:1a-0:120", parse_packets_id, PacketsId("cam-1", "1a-0", 120)),
    (packets_id("cam1", "odd:session", 7), "cam1:odd:session:7", parse_packets_id,
     PacketsId("cam1", "odd:session", 7)),
    (keyframe_id("porch", "1a-0", 30), "porch:1a-0:30", parse_keyframe_id, KeyframeId("porch", "1a-0", 30)),
    (segment_id("porch", "7-ab12", 1234), "porch:7-ab12:1234", parse_segment_id, SegmentId("porch", "7-ab12", 1234)),
    (gap_id("porch", 1795845752.5, None), "porch:gap:1795845752.500000:open", parse_gap_id,
     GapId("porch", 1795845752.5, None)),
    (gap_id("porch", 1795845752.5, 1795845760.25), "porch:gap:1795845752.500000:1795845760.250000", parse_gap_id,
     GapId("porch", 1795845752.5, 1795845760.25)),
    (gap_id("porch", 1795845752.3456789, None), "porch:gap:1795845752.345679:open", parse_gap_id,
     GapId("porch", 1795845752.345679, None)),  # to the microsecond, as the segmenter always wrote it
    (gap_id("porch", 5, 7), "porch:gap:5.000000:7.000000", parse_gap_id, GapId("porch", 5.0, 7.0)),
    (detection_id("porch", "a1-0", 30, 2), "porch:a1-0:30:2", parse_detection_id,
     DetectionId("porch", "a1-0", 30, 2)),
    (detection_id("a", "s:1", 0, 0), "a:s:1:0:0", parse_detection_id, DetectionId("a", "s:1", 0, 0)),
]


@pytest.mark.parametrize(("built", "literal", "parse", "parsed"), FORMATS, ids=[f[1] for f in FORMATS])
def test_formats_are_byte_identical_and_parse_back(built, literal, parse, parsed):
    assert built == literal
    assert parse(literal) == parsed
    assert str(parsed) == literal


# The f-strings each publisher used before the formats moved here: stored streams dedup against these.
OLD_FORMATS = {
    "info": lambda cam, session, n, m: f"{cam}:{session}:info",
    "info repeat": lambda cam, session, n, m: f"{cam}:{session}:info:{n + 1}",
    "packets": lambda cam, session, n, m: f"{cam}:{session}:{n}",
    "keyframe": lambda cam, session, n, m: f"{cam}:{session}:{n}",
    "segment": lambda cam, session, n, m: f"{cam}:{session}:{n}",
    "detection": lambda cam, session, n, m: f"{cam}:{session}:{n}:{m}",
}
NEW_FORMATS = {
    "info": lambda cam, session, n, m: stream_info_id(cam, session),
    "info repeat": lambda cam, session, n, m: stream_info_id(cam, session, n + 1),
    "packets": lambda cam, session, n, m: packets_id(cam, session, n),
    "keyframe": lambda cam, session, n, m: keyframe_id(cam, session, n),
    "segment": lambda cam, session, n, m: segment_id(cam, session, n),
    "detection": lambda cam, session, n, m: detection_id(cam, session, n, m),
}

cameras = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True)
sessions = st.text(min_size=1, max_size=64) | st.from_regex(r"[0-9a-f]{1,8}-[0-9a-f]{1,4}", fullmatch=True)
seqs = st.integers(min_value=0, max_value=2**64)
times = st.floats(allow_nan=False, allow_infinity=False)


@pytest.mark.parametrize("kind", sorted(OLD_FORMATS))
@given(cameras, sessions, seqs, seqs)
def test_builders_match_the_old_f_strings(kind, camera, session, n, m):
    assert NEW_FORMATS[kind](camera, session, n, m) == OLD_FORMATS[kind](camera, session, n, m)


@given(cameras, times, times | st.none())
def test_gap_builder_matches_the_old_f_string(camera, start, end):
    old = f"{camera}:gap:{start:.6f}:{'open' if end is None else f'{end:.6f}'}"
    assert gap_id(camera, start, end) == old


@given(cameras, sessions, seqs, seqs)
def test_round_trips(camera, session, n, m):
    cases = [
        (stream_info_id(camera, session, n), parse_stream_info_id, StreamInfoId(camera, session, n)),
        (packets_id(camera, session, n), parse_packets_id, PacketsId(camera, session, n)),
        (keyframe_id(camera, session, n), parse_keyframe_id, KeyframeId(camera, session, n)),
        (segment_id(camera, session, n), parse_segment_id, SegmentId(camera, session, n)),
        (detection_id(camera, session, n, m), parse_detection_id, DetectionId(camera, session, n, m)),
    ]
    for msg_id, parse, parts in cases:
        assert parse(msg_id) == parts, msg_id
        assert str(parts) == msg_id
        assert camera_of(msg_id) == camera


@given(cameras, times, times | st.none())
def test_gap_round_trip_to_the_microsecond(camera, start, end):
    msg_id = gap_id(camera, start, end)
    parsed = parse_gap_id(msg_id)
    assert parsed == GapId(camera, float(f"{start:.6f}"), None if end is None else float(f"{end:.6f}"))
    assert str(parsed) == msg_id and camera_of(msg_id) == camera


PARSERS = [parse_stream_info_id, parse_packets_id, parse_keyframe_id, parse_segment_id, parse_gap_id,
           parse_detection_id]


@given(st.text(alphabet="ab:gapinfo0123456789.-_ ", max_size=40) | st.text(max_size=40))
def test_a_parser_accepts_exactly_what_its_builder_makes(text):
    for parse in PARSERS:
        parsed = parse(text)
        assert parsed is None or str(parsed) == text, (parse.__name__, text)


@pytest.mark.parametrize(("parse", "msg_id"), [
    *[(parse, bad) for parse in PARSERS for bad in (None, "", ":", "porch", "porch:", "Porch:s:1:2",
                                                   " porch:s:1:2", "porch:s:1:2 ", b"porch:s:1:2", 12)],
    *[(parse, bad) for parse in (parse_packets_id, parse_keyframe_id, parse_segment_id)
      for bad in ("porch:s", "porch::1", "porch:s:", "porch:s:x", "porch:s:-1", "porch:s:+1", "porch:s:01",
                  "porch:s:1.0", "porch:s:1e3", "porch:s:\u0661", "porch:s:\u00b2", "porch:gap:1.500000:open",
                  "porch:s:info")],
    *[(parse_detection_id, bad) for bad in ("porch:s:30", "porch::30:0", "porch:s:30:x", "porch:s:x:0",
                                            "porch:s:30:-1", "porch:s:30:01", "porch:s:30:\u00b2",
                                            "porch:s:30:0:")],
    *[(parse_gap_id, bad) for bad in ("porch:gap:1.5:open", "porch:gap:1.500000", "porch:gap:abc:open",
                                      "porch:gap:1.500000:closed", "porch:gap:1.500000:2.5",
                                      "porch:gap:00.500000:open", "porch:gap:+1.500000:open",
                                      "porch:gap:nan:open", "porch:gap:inf:open", "porch:s:1.500000:open",
                                      "porch:gap:1.500000:open:x", "porch:gap:1.500000:open:",
                                      "porch:gap:100000000000000000000000.000001:open")],
    *[(parse_stream_info_id, bad) for bad in ("porch:info", "porch::info", "porch:s:info:0", "porch:s:info:x",
                                              "porch:s:info:01", "porch:s:infox", "porch:s:1", "porch:s:info:",
                                              "porch:s:info:-1")],
])
def test_malformed_ids_parse_to_none(parse, msg_id):
    assert parse(msg_id) is None


@pytest.mark.parametrize(("msg_id", "camera"), [
    ("porch:s:1", "porch"), ("cam-1:gap:1.000000:open", "cam-1"), ("porch", None), ("", None), (None, None),
    ("Porch:s:1", None), (":s:1", None),
])
def test_camera_of(msg_id, camera):
    assert camera_of(msg_id) == camera


@pytest.mark.parametrize(("build", "error"), [
    (lambda: packets_id("Porch", "s", 1), InvalidName),
    (lambda: packets_id("por:ch", "s", 1), InvalidName),
    (lambda: keyframe_id("porch", "", 1), ValueError),
    (lambda: segment_id("porch", None, 1), ValueError),
    (lambda: packets_id("porch", "s", -1), ValueError),
    (lambda: keyframe_id("porch", "s", True), ValueError),
    (lambda: segment_id("porch", "s", 1.0), ValueError),
    (lambda: detection_id("porch", "s", 1, -1), ValueError),
    (lambda: stream_info_id("porch", "s", -1), ValueError),
    (lambda: gap_id("porch", None, None), ValueError),
    (lambda: gap_id("porch", 1.0, "open"), ValueError),
    (lambda: gap_id("Bad", 1.0, None), InvalidName),
])
def test_builders_refuse_what_would_not_parse_back(build, error):
    with pytest.raises(error):
        build()
