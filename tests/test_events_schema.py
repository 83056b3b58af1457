"""The tracked-object event contract (schemas/events.py): subjects, Msg-Ids and validation."""

import pytest

from spectare.core.errors import InvalidName, SchemaError
from spectare.schemas import Names, ObjectEvent, SubjectKind, event_id

BASE = dict(type="new", camera="porch", object_id="1a-0-7", seq=0, label="person", time=10.0, first_seen=8.0,
            last_seen=10.0, top_score=0.8, box=(0.1, 0.2, 0.3, 0.4), session="1a-0", keyframe_seq=30)


def test_events_travel_per_camera_and_label_and_parse_back():
    names = Names("site1")
    assert names.events("porch", "Traffic light") == "site1.events.porch.traffic_light"
    assert names.events("*") == "site1.events.*.*"
    parsed = names.parse("site1.events.porch.car")
    assert (parsed.kind, parsed.camera, parsed.label) == (SubjectKind.EVENTS, "porch", "car")
    assert names.events_stream == "SITE1_EVENTS"


@pytest.mark.parametrize(("camera", "object_id", "seq", "expected"), [
    ("porch", "1a-0-7", 0, "porch:1a-0-7:0"),
    ("porch", "1a-0-7", 12, "porch:1a-0-7:12"),
])
def test_an_objects_messages_have_distinct_msg_ids(camera, object_id, seq, expected):
    assert event_id(camera, object_id, seq) == expected


@pytest.mark.parametrize(("camera", "object_id", "seq"), [
    ("Porch", "1a", 0), ("porch", "a:b", 0), ("porch", "", 0), ("porch", "1a", -1), ("porch", "1a", True),
])
def test_bad_msg_id_parts_are_refused(camera, object_id, seq):
    with pytest.raises((InvalidName, ValueError)):
        event_id(camera, object_id, seq)


def test_an_event_normalises_labels_and_zones_and_refuses_what_is_wrong():
    event = ObjectEvent.create(**{**BASE, "label": "Traffic light", "zones": ("Front drive",)})
    assert event.label == "traffic_light" and event.zones == ("front_drive",)
    assert ObjectEvent.decode(event.encode()) == event
    for bad in ({"type": "started"}, {"object_id": "has space"}, {"top_score": 1.5}, {"changes": ("teleported",)},
                {"box": (0.1, 0.2, 0.3)}):
        with pytest.raises(SchemaError):
            ObjectEvent.create(**{**BASE, **bad})
