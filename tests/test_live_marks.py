"""Live marks (`spectare.core.live`): which cameras someone watches live, as ingest sees them."""

import pytest

from spectare.core.errors import InvalidName
from spectare.core.live import LiveMarks
from spectare.schemas import live_mark_camera, live_mark_key


@pytest.mark.parametrize(("events", "now", "watched"), [
    ([], 0.0, set()),
    ([("put", "porch.a1", 0.0)], 29.9, {"porch"}),
    ([("put", "porch.a1", 0.0)], 30.0, set()),  # not put again within the TTL: its API process is gone
    ([("put", "porch.a1", 0.0), ("put", "porch.a1", 20.0)], 45.0, {"porch"}),  # refreshed
    ([("put", "porch.a1", 0.0), ("remove", "porch.a1", 1.0)], 1.0, set()),
    # two API processes stream the camera: it stays watched until both have left
    ([("put", "porch.a1", 0.0), ("put", "porch.b2", 5.0), ("remove", "porch.a1", 6.0)], 6.0, {"porch"}),
    ([("put", "porch.a1", 0.0), ("put", "porch.b2", 5.0), ("remove", "porch.b2", 6.0)], 31.0, set()),
    ([("put", "porch.a1", 0.0), ("put", "drive.a1", 0.0), ("remove", "drive.a1", 1.0)], 1.0, {"porch"}),
    ([("put", "not-a-mark", 0.0), ("put", "Porch.a1", 0.0), ("put", "porch.", 0.0)], 1.0, set()),  # ignored
    ([("remove", "porch.a1", 0.0)], 0.0, set()),
    ([("put", "porch.a1", 0.0), ("clear", "", 1.0)], 1.0, set()),
])
def test_a_camera_is_watched_while_a_mark_of_it_is_fresh(events, now, watched):
    marks = LiveMarks(ttl_s=30.0)
    for op, key, at in events:
        match op:
            case "put":
                marks.put(key, at)
            case "remove":
                marks.remove(key)
            case "clear":
                marks.clear()
    assert marks.cameras(now) == watched
    for camera in ("porch", "drive"):
        assert marks.watched(camera, now) == (camera in watched)


def test_mark_keys_name_the_camera_and_the_process():
    key = live_mark_key("porch", "9f3a01")
    assert key == "porch.9f3a01" and live_mark_camera(key) == "porch"
    for bad_camera, holder in (("Porch", "9f3a01"), ("porch", "a.b"), ("porch", "")):
        with pytest.raises(InvalidName):
            live_mark_key(bad_camera, holder)
    for bad_key in ("porch", "porch.", ".9f3a01", "por ch.9f"):
        with pytest.raises(InvalidName):
            live_mark_camera(bad_key)
