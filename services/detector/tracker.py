"""The tracker's decisions, pure: one camera's objects across keyframes, and the events that tell their lives.

Keyframes come one a second or slower, so objects move far between two of them (a walking person about its own
height, a car several lengths): boxes of one object often do not overlap at all. Association is therefore by
distance, not overlap: each object's box centre is predicted from its velocity, and a finding of a compatible
label (car, truck and bus are one family; bicycle and motorcycle another) may continue it when the prediction
misses by at most `max_jump` box diagonals per second since it was last seen. Pairs are taken cheapest first.

- An object seen on `min_hits` keyframes (and, if the camera requires zones, standing in one of them) gets `new`.
- `update` tells a change worth waking someone for: a better snapshot (score up by `snapshot_margin`), a zone
  entered or left (by the box's bottom centre), stationary (centre within `STILL_TOLERANCE` of the box's size for
  `stationary_after_s`), moving again. A stationary object sends nothing else until it moves or leaves.
- `end` once an object was unseen for `end_after_s`; an object never announced leaves without a word.
- A keyframe the motion gate found still (`findings` None) shows the previous keyframe's picture again: the
  objects seen on that one are seen again, where they were; those missing from it stay missing.
- `expire` ends objects on a camera that sent no keyframe for `end_after_s` (the timer's step).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from math import hypot

from spectare.schemas import ObjectEvent
from spectare.schemas.events import Change
from spectare.schemas.tracks import TrackedObject, TrackerState
from spectare.schemas.zones import Zone

STILL_TOLERANCE = 0.2  # of the box's larger side: a parked car's box jitters by a few per cent
LABEL_FAMILIES = ({"car", "truck", "bus"}, {"bicycle", "motorcycle"})
MAX_GAP_S = 3.0  # unseen longer, an object may still be continued, but no further than after 3 s
VELOCITY_MEMORY = 0.5  # share of the previous velocity kept when a new one is measured


@dataclass(frozen=True, slots=True)
class Rules:
    """A camera's tracking settings (its registry entry, else the detector's)."""

    min_hits: int
    end_after_s: float
    stationary_after_s: float
    max_jump: float  # box diagonals per second a prediction may miss by
    snapshot_margin: float
    zones: tuple[Zone, ...] = ()
    required_zones: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Finding:
    label: str
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Frame:
    """One keyframe as the tracker sees it: its findings (None: the motion gate found the picture unchanged)."""

    time: float
    session: str
    seq: int
    findings: tuple[Finding, ...] | None
    snapshot_key: str | None = None


def newer(frame: Frame, state: TrackerState) -> bool:
    """Whether the frame comes after the last one the state tracked (replicas may finish out of order)."""
    return (frame.time, frame.seq) > (state.time, state.seq)


def advance(state: TrackerState, frame: Frame, rules: Rules) -> tuple[TrackerState, list[ObjectEvent]]:
    """The state after `frame` (which must be `newer`) and the events it raises, in order."""
    events: list[ObjectEvent] = []
    objects = list(state.objects)
    if frame.findings is None:  # the picture of the last keyframe again: what was on it still is
        kept = [_observe(obj, obj.box, None, frame, rules, still=True) if obj.last_seen == state.time else (obj, ())
                for obj in objects]
        fresh: list[TrackedObject] = []
    else:
        pairs = associate(objects, frame.findings, frame.time, rules.max_jump)
        matched = dict(pairs)
        taken = set(matched.values())
        kept = []
        for i, obj in enumerate(objects):
            if i in matched:
                finding = frame.findings[matched[i]]
                kept.append(_observe(obj, finding.box, finding, frame, rules, still=False))
            else:
                kept.append((obj, ()))
        fresh = [_start(frame, j, f, rules) for j, f in enumerate(frame.findings) if j not in taken]
    survivors: list[TrackedObject] = []
    for obj, changes in kept:
        if frame.time - obj.last_seen > rules.end_after_s:
            if obj.announced:
                events.append(_event(state.camera, obj, "end", frame.time, ()))
            continue
        obj, event = _announce(state.camera, obj, changes, frame.time, rules)
        if event is not None:
            events.append(event)
        survivors.append(obj)
    for obj in fresh:
        obj, event = _announce(state.camera, obj, (), frame.time, rules)
        if event is not None:
            events.append(event)
        survivors.append(obj)
    return TrackerState(camera=state.camera, time=frame.time, session=frame.session, seq=frame.seq,
                        objects=tuple(survivors), outbox=tuple(events)), events


def expire(state: TrackerState, now: float, rules: Rules) -> tuple[TrackerState, list[ObjectEvent]]:
    """End the objects of a camera that sent no keyframe for `end_after_s` (none when it did: keyframes decide)."""
    if now - state.time < rules.end_after_s or not state.objects:
        return state, []
    ending = [obj for obj in state.objects if now - obj.last_seen > rules.end_after_s]
    if not ending:
        return state, []
    events = [_event(state.camera, obj, "end", now, ()) for obj in ending if obj.announced]
    left = tuple(obj for obj in state.objects if obj not in ending)
    return state.model_copy(update={"objects": left, "outbox": tuple(events)}), events


def associate(objects: list[TrackedObject], findings: Iterable[Finding], time: float,
              max_jump: float) -> list[tuple[int, int]]:
    """(object index, finding index) pairs: each object continued by at most one finding, cheapest first."""
    candidates = []
    for j, finding in enumerate(findings):
        cx, cy = centre(finding.box)
        for i, obj in enumerate(objects):
            if not same_family(obj.label, finding.label):
                continue
            dt = max(time - obj.last_seen, 0.0)
            px, py = centre(obj.box)
            px, py = px + obj.velocity[0] * dt, py + obj.velocity[1] * dt
            scale = max(diagonal(obj.box), diagonal(finding.box), 1e-6)
            miss = hypot(cx - px, cy - py) / scale
            if miss <= max_jump * min(max(dt, 1.0), MAX_GAP_S) and _similar_size(obj.box, finding.box):
                candidates.append((miss, i, j))
    pairs, used_objects, used_findings = [], set(), set()
    for _, i, j in sorted(candidates):
        if i not in used_objects and j not in used_findings:
            pairs.append((i, j))
            used_objects.add(i)
            used_findings.add(j)
    return pairs


def same_family(a: str, b: str) -> bool:
    return a == b or any(a in family and b in family for family in LABEL_FAMILIES)


def centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def foot(box: tuple[float, float, float, float]) -> tuple[float, float]:
    """The box's bottom centre: where the object stands."""
    return (box[0] + box[2]) / 2, box[3]


def diagonal(box: tuple[float, float, float, float]) -> float:
    return hypot(box[2] - box[0], box[3] - box[1])


def zones_at(box: tuple[float, float, float, float], zones: tuple[Zone, ...]) -> tuple[str, ...]:
    x, y = foot(box)
    return tuple(zone.name for zone in zones if zone.contains(x, y))


def _similar_size(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """One box at most 4 times the other's area: a person far away is not the same as a bus close by."""
    area_a = max((a[2] - a[0]) * (a[3] - a[1]), 1e-9)
    area_b = max((b[2] - b[0]) * (b[3] - b[1]), 1e-9)
    return max(area_a, area_b) / min(area_a, area_b) <= 4.0


def _start(frame: Frame, index: int, finding: Finding, rules: Rules) -> TrackedObject:
    """A new (not yet announced) object; its id is unique per camera and the same in any re-run of the frame."""
    zones = zones_at(finding.box, rules.zones)
    return TrackedObject(
        object_id=f"{round(frame.time * 1000)}-{index}", label=finding.label, first_seen=frame.time,
        last_seen=frame.time, hits=1, top_score=finding.score, snapshot_score=finding.score,
        snapshot_key=frame.snapshot_key, box=finding.box, zones=zones, entered_zones=zones, still_since=frame.time,
        anchor=centre(finding.box), session=frame.session, keyframe_seq=frame.seq)


def _observe(obj: TrackedObject, box: tuple[float, float, float, float], finding: Finding | None, frame: Frame,
             rules: Rules, still: bool) -> tuple[TrackedObject, tuple[Change, ...]]:
    """The object seen on `frame` at `box` (`finding` None: an unchanged picture), and what changed."""
    changes: list[Change] = []
    update: dict = {"last_seen": frame.time, "session": frame.session, "keyframe_seq": frame.seq, "box": box}
    cx, cy = centre(box)
    if still:
        update["velocity"] = (0.0, 0.0)
    else:
        dt = max(frame.time - obj.last_seen, 1e-3)
        ox, oy = centre(obj.box)
        measured = ((cx - ox) / dt, (cy - oy) / dt)
        keep = VELOCITY_MEMORY if obj.hits > 1 else 0.0
        update["velocity"] = tuple(keep * v + (1 - keep) * m for v, m in zip(obj.velocity, measured, strict=True))
    stationary, still_since, anchor = obj.stationary, obj.still_since, obj.anchor
    size = max(box[2] - box[0], box[3] - box[1])
    if hypot(cx - anchor[0], cy - anchor[1]) > STILL_TOLERANCE * size:
        still_since, anchor = frame.time, (cx, cy)
        if stationary:
            stationary = False
            changes.append("moving")
    elif not stationary and frame.time - still_since >= rules.stationary_after_s:
        stationary = True
        changes.append("stationary")
    update.update(stationary=stationary, still_since=still_since, anchor=anchor)
    update["hits"] = obj.hits + 1  # a still picture counts: the model would find the same on it
    if finding is not None:
        update["top_score"] = max(obj.top_score, finding.score)
        if not obj.announced:
            update["label"] = finding.label  # the label is settled by the `new` event
        better = finding.score >= obj.snapshot_score + rules.snapshot_margin
        if frame.snapshot_key is not None and (better or obj.snapshot_key is None) and not stationary:
            update["snapshot_score"], update["snapshot_key"] = finding.score, frame.snapshot_key
            changes.append("snapshot")
    if not stationary:  # a parked object's zones stay as they were: its box only jitters
        zones = zones_at(box, rules.zones)
        entered = [z for z in zones if z not in obj.zones]
        if entered:
            changes.append("zone_entered")
        if any(z not in zones for z in obj.zones):
            changes.append("zone_left")
        update["zones"] = zones
        update["entered_zones"] = obj.entered_zones + tuple(z for z in entered if z not in obj.entered_zones)
    return obj.model_copy(update=update), tuple(changes)


def _announce(camera: str, obj: TrackedObject, changes: tuple[Change, ...], time: float,
              rules: Rules) -> tuple[TrackedObject, ObjectEvent | None]:
    """The event an object's changes raise now: its `new` once it is real, later an `update`."""
    if not obj.announced:
        in_zone = not rules.required_zones or any(z in rules.required_zones for z in obj.entered_zones)
        if obj.hits >= rules.min_hits and in_zone:
            obj = obj.model_copy(update={"announced": True, "next_seq": 1})
            return obj, _event(camera, obj, "new", time, (), seq=0)
        return obj, None
    if not changes:
        return obj, None
    return obj.model_copy(update={"next_seq": obj.next_seq + 1}), _event(camera, obj, "update", time, changes)


def _event(camera: str, obj: TrackedObject, kind: str, time: float, changes: tuple[Change, ...],
           seq: int | None = None) -> ObjectEvent:
    return ObjectEvent.create(
        type=kind, camera=camera, object_id=obj.object_id, seq=obj.next_seq if seq is None else seq, label=obj.label,
        time=time, first_seen=obj.first_seen, last_seen=obj.last_seen, top_score=obj.top_score, box=obj.box,
        snapshot_key=obj.snapshot_key, zones=obj.zones, entered_zones=obj.entered_zones,
        stationary=obj.stationary, changes=changes, session=obj.session, keyframe_seq=obj.keyframe_seq)

