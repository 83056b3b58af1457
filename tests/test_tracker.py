"""The tracker's decisions, pure and table-driven: association at keyframe rate, new/update/end, stationary
objects, zones, required zones, the end timer, and late keyframes."""

import pytest

from spectare.detector.tracker import Finding, Frame, Rules, advance, associate, expire, newer, same_family
from spectare.schemas.tracks import TrackedObject, TrackerState
from spectare.schemas.zones import Zone

RULES = Rules(min_hits=2, end_after_s=5.0, stationary_after_s=10.0, max_jump=2.0, snapshot_margin=0.1)
DRIVE = Zone(name="drive", points=((0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0)))


def person(x: float, y: float = 0.3, score: float = 0.8, w: float = 0.06, h: float = 0.2) -> Finding:
    return Finding("person", score, (x, y, x + w, y + h))


def car(x: float, y: float = 0.6, score: float = 0.8, label: str = "car") -> Finding:
    return Finding(label, score, (x, y, x + 0.2, y + 0.12))


def run(steps: list[tuple[float, tuple[Finding, ...] | None]], rules: Rules = RULES):
    """Feed frames (time, findings); return every event and the final state."""
    state = TrackerState(camera="cam", time=0.0)
    events = []
    for seq, (t, findings) in enumerate(steps):
        state, raised = advance(state, Frame(time=1000.0 + t, session="s", seq=seq, findings=findings,
                                             snapshot_key=f"snap-{seq}"), rules)
        events += raised
    return events, state


def kinds(events) -> list[str]:
    return [e.type for e in events]


def track(x: float, label: str = "person", last_seen: float = 1000.0, velocity=(0.0, 0.0)) -> TrackedObject:
    f = person(x) if label == "person" else car(x, label=label)
    return TrackedObject(object_id=f"o{x}", label=label, first_seen=last_seen, last_seen=last_seen, hits=3,
                         top_score=0.8, box=f.box, velocity=velocity, still_since=last_seen, anchor=(x, 0.4),
                         session="s", keyframe_seq=0)


@pytest.mark.parametrize("objects, findings, dt, pairs", [
    ([track(0.1)], [person(0.1)], 1.0, [(0, 0)]),  # stood still
    ([track(0.1)], [person(0.25)], 1.0, [(0, 0)]),  # walked ~its own height in a second: no overlap, same one
    ([track(0.1)], [person(0.8)], 1.0, []),  # far across the frame: another person
    ([track(0.1)], [person(0.8)], 3.0, [(0, 0)]),  # unseen for 3 keyframes, it may have walked that far
    ([track(0.1, velocity=(0.3, 0.0))], [person(0.7)], 2.0, [(0, 0)]),  # its walk predicted it there
    ([track(0.1), track(0.5)], [person(0.52), person(0.12)], 1.0, [(0, 1), (1, 0)]),  # nearest first
    ([track(0.1, "car")], [car(0.15, label="truck")], 1.0, [(0, 0)]),  # car/truck flips are one vehicle
    ([track(0.1, "car")], [person(0.12)], 1.0, []),  # a person is never a car
    ([track(0.1)], [Finding("person", 0.8, (0.1, 0.3, 0.4, 0.95))], 1.0, []),  # 16x the area: not the same
])
def test_association(objects, findings, dt, pairs):
    assert sorted(associate(objects, findings, 1000.0 + dt, RULES.max_jump)) == sorted(pairs)


@pytest.mark.parametrize("a, b, same", [("car", "truck", True), ("bus", "car", True), ("bicycle", "motorcycle", True),
                                        ("person", "bicycle", False), ("car", "motorcycle", False)])
def test_label_families(a, b, same):
    assert same_family(a, b) is same


def walk(start: float, step: float, n: int, t0: float = 0.0) -> list[tuple[float, tuple[Finding, ...]]]:
    return [(t0 + i, (person(start + i * step),)) for i in range(n)]


@pytest.mark.parametrize("name, steps, expected", [
    ("seen once: noise, never announced", [(0, (person(0.1),)), (1, ()), (7, ())], []),
    ("a walk across: new on the 2nd keyframe, end after end_after_s",
     walk(0.05, 0.1, 8) + [(8, ()), (14, ())], ["new", "end"]),
    ("missed on two keyframes in the middle: still one object",
     walk(0.05, 0.1, 3) + [(3, ()), (4, ())] + walk(0.55, 0.1, 3, t0=5) + [(20, ())], ["new", "end"]),
    ("better snapshot by the margin: one update",
     [(0, (person(0.1, score=0.6),)), (1, (person(0.2, score=0.65),)), (2, (person(0.3, score=0.75),)),
      (3, (person(0.4, score=0.78),))], ["new", "update"]),
])
def test_life_of_an_object(name, steps, expected):
    events, _ = run(steps)
    assert kinds(events) == expected, name
    assert len({e.object_id for e in events}) <= 1
    assert [e.seq for e in events] == list(range(len(events)))


def test_new_carries_what_was_seen_and_end_the_last_sighting():
    events, state = run(walk(0.05, 0.1, 4) + [(20, ())])
    new, end = events
    assert (new.label, new.first_seen, new.last_seen, new.snapshot_key) == ("person", 1000.0, 1001.0, "snap-0")
    assert end.last_seen == 1003.0 and end.time == 1020.0 and end.box == pytest.approx(person(0.35).box)
    assert state.objects == ()


def test_a_parked_car_is_one_new_and_one_stationary_update_however_long_it_stays():
    steps = [(t, (car(0.3 + (0.003 if t % 2 else 0)),)) for t in range(0, 120)]  # boxes jitter a little
    events, state = run(steps)
    assert kinds(events) == ["new", "update"]
    assert events[1].changes == ("stationary",) and events[1].stationary
    assert events[1].time == 1010.0
    moved, _ = run(steps + [(120, (car(0.5),)), (121, (car(0.7),))])
    assert kinds(moved) == ["new", "update", "update"] and moved[2].changes[0] == "moving"


def test_still_keyframes_keep_objects_where_they_were():
    """The gate found nothing changed: the parked car is still there, however long no finding comes."""
    steps = [(0, (car(0.3),)), (1, (car(0.3),))] + [(t, None) for t in range(2, 60)]
    events, state = run(steps)
    assert kinds(events) == ["new", "update"] and events[1].changes == ("stationary",)
    assert len(state.objects) == 1 and state.objects[0].last_seen == 1059.0


def test_one_enters_while_another_is_parked():
    parked = [car(0.1, y=0.2)]
    steps = [(t, tuple(parked)) for t in range(15)]
    steps += [(15 + i, (*parked, person(0.3 + 0.1 * i, y=0.6))) for i in range(4)]
    steps += [(19 + i, tuple(parked)) for i in range(10)]
    events, _ = run(steps)
    by_object: dict[str, list[str]] = {}
    for e in events:
        by_object.setdefault(e.label, []).append(e.type)
    assert by_object == {"car": ["new", "update"], "person": ["new", "end"]}


def test_zones_by_the_bottom_centre():
    rules = Rules(min_hits=2, end_after_s=5, stationary_after_s=10, max_jump=2, snapshot_margin=1.0, zones=(DRIVE,))
    # a person walks right along y 0.35..0.55: the foot (y 0.55) is inside the drive (x >= 0.5)
    steps = [(i, (person(0.2 + 0.1 * i, y=0.35),)) for i in range(7)] + [(20, ())]
    events, _ = run(steps, rules)
    assert kinds(events) == ["new", "update", "end"]
    assert events[0].zones == () and events[1].changes == ("zone_entered",) and events[1].zones == ("drive",)
    assert events[2].entered_zones == ("drive",)


@pytest.mark.parametrize("path, expected", [
    ([(0.1, 0.1), (0.2, 0.1), (0.3, 0.1)], []),  # never on the drive: no event at all
    ([(0.3, 0.3), (0.4, 0.35), (0.55, 0.4), (0.65, 0.4)], ["new", "end"]),  # enters: its `new` then
])
def test_required_zones(path, expected):
    rules = Rules(min_hits=2, end_after_s=5, stationary_after_s=10, max_jump=2, snapshot_margin=1.0,
                  zones=(DRIVE,), required_zones=frozenset({"drive"}))
    steps = [(i, (person(x, y=y),)) for i, (x, y) in enumerate(path)] + [(30, ())]
    events, _ = run(steps, rules)
    assert kinds(events) == expected
    if events:
        assert events[0].entered_zones == ("drive",)


def test_the_end_timer_ends_objects_of_a_silent_camera_only():
    _, state = run(walk(0.05, 0.1, 3))
    assert expire(state, 1003.0, RULES)[1] == []  # keyframes still come: they decide
    ended, events = expire(state, 1008.0, RULES)
    assert kinds(events) == ["end"] and ended.objects == () and events[0].time == 1008.0
    _, fresh = run([(0, (person(0.1),))])
    assert expire(fresh, 1008.0, RULES)[1] == []  # never announced: gone without a word
    assert expire(fresh, 1008.0, RULES)[0].objects == ()


def test_late_keyframes_and_ids():
    _, state = run(walk(0.05, 0.1, 3))
    assert not newer(Frame(time=1001.0, session="s", seq=1, findings=()), state)
    assert newer(Frame(time=1003.0, session="s", seq=3, findings=()), state)
    _, again = run(walk(0.05, 0.1, 3))
    assert again == state, "the same keyframes make the same state: a re-run names objects alike"
    assert state.objects[0].object_id == "1000000-0"


def test_still_keyframes_do_not_bring_back_who_left():
    """The person left on keyframe 3 (motion: the model ran and did not find them); the still ones after it show
    that picture again, so they end, while the parked car seen on it stays."""
    steps = [(t, (car(0.1, y=0.2), person(0.4 + 0.1 * t))) for t in range(3)] + [(3, (car(0.1, y=0.2),))]
    steps += [(t, None) for t in range(4, 9)]
    events, state = run(steps)
    assert [(e.type, e.label) for e in events] == [("new", "car"), ("new", "person"), ("end", "person")]
    assert [o.label for o in state.objects] == ["car"]


def test_still_keyframes_count_as_sightings():
    """A car on the first keyframe of a still scene is announced on the next (the same picture again)."""
    events, _ = run([(0, (car(0.3),)), (1, None)])
    assert kinds(events) == ["new"]
