"""Zones and masks, pure: point in polygon, the self-crossing check, CameraConfig's validation and its wire form."""

import json

import pytest

from spectare.core.errors import SchemaError
from spectare.detector.gate import hide
from spectare.detector.policy import masked
from spectare.schemas import CameraConfig
from spectare.schemas.zones import Mask, parse_polygon, point_in_polygon, polygon_problem, self_crossing

SQUARE = ((0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6))
CONCAVE = ((0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.5, 0.4), (0.1, 0.9))  # a notch from the bottom


@pytest.mark.parametrize("polygon, point, inside", [
    (SQUARE, (0.4, 0.4), True),
    (SQUARE, (0.1, 0.4), False),
    (SQUARE, (0.4, 0.7), False),
    (SQUARE, (0.7, 0.7), False),
    (CONCAVE, (0.5, 0.2), True),
    (CONCAVE, (0.5, 0.8), False),  # in the notch
    (CONCAVE, (0.15, 0.8), True),
    (CONCAVE, (0.2, 0.8), False),
    (((0.0, 0.0), (1.0, 0.0), (0.5, 1.0)), (0.5, 0.5), True),
    (((0.0, 0.0), (1.0, 0.0), (0.5, 1.0)), (0.05, 0.9), False),
])
def test_point_in_polygon(polygon, point, inside):
    assert point_in_polygon(*point, polygon) is inside


@pytest.mark.parametrize("polygon, crossing", [
    (SQUARE, None),
    (CONCAVE, None),
    (((0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0)), (0, 2)),  # a bow tie
    (((0.1, 0.1), (0.9, 0.1), (0.1, 0.9), (0.9, 0.9), (0.5, 0.5)), (1, 3)),  # a corner on a diagonal
    (((0.1, 0.1), (0.5, 0.1), (0.9, 0.1), (0.5, 0.5), (0.3, 0.1)), (0, 3)),  # a corner on another edge
])
def test_self_crossing(polygon, crossing):
    assert self_crossing(polygon) == crossing


@pytest.mark.parametrize("points, problem", [
    (SQUARE, None),
    (((0.1, 0.1), (0.2, 0.2)), "at least 3 points"),
    (((0.1, 0.1), (1.2, 0.2), (0.1, 0.5)), "point 2 (1.2, 0.2) is outside the picture"),
    (((0.1, -0.1), (0.2, 0.2), (0.1, 0.5)), "point 1 (0.1, -0.1) is outside"),
    (((0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0)), "crosses itself: edge 1 crosses edge 3"),
    (((0.1, 0.1), (0.2, 0.2), (0.3, 0.3)), "all on one line"),
    (((0.1, 0.1), (0.2, 0.2), (0.1, 0.1), (0.5, 0.1)), "may not repeat a point"),
])
def test_polygon_problems_are_said(points, problem):
    said = polygon_problem(points)
    assert (said is None) if problem is None else (problem in said), said


@pytest.mark.parametrize("text, parsed", [
    ("drive=0.1,0.5,0.4,0.5,0.4,0.9", ("drive", ((0.1, 0.5), (0.4, 0.5), (0.4, 0.9)))),
    (" porch = 0,0, 1,0, 1,1 ", ("porch", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)))),
])
def test_parse_polygon(text, parsed):
    assert parse_polygon(text) == parsed


@pytest.mark.parametrize("text, error", [
    ("0.1,0.5,0.4,0.5,0.4,0.9", "write NAME=x1,y1"),
    ("drive=0.1,0.5,0.4", "odd number"),
    ("drive=a,b,c,d,e,f", "must be numbers"),
])
def test_parse_polygon_errors(text, error):
    with pytest.raises(ValueError, match=error):
        parse_polygon(text)


def camera(**fields) -> CameraConfig:
    return CameraConfig.create(name="cam", url="rtsp://192.0.2.1/", **fields)


DRIVE = {"name": "drive", "points": SQUARE}


@pytest.mark.parametrize("fields, error", [
    ({"zones": ({"name": "drive", "points": ((0, 0), (1, 1), (1, 0), (0, 1))},)}, "zones.0.points: .*crosses itself"),
    ({"zones": ({"name": "drive", "points": ((0.1, 0.1), (1.5, 0.1), (0.1, 0.5))},)}, "outside the picture"),
    ({"zones": ({"name": "Front Door!", "points": SQUARE},)}, "zones.0.name: .*invalid name 'Front Door!'"),
    ({"zones": (DRIVE, DRIVE)}, "zone names must be unique; drive given twice"),
    ({"masks": ({"name": "m", "points": SQUARE}, {"name": "m", "points": CONCAVE})}, "mask names must be unique"),
    ({"zones": (DRIVE,), "required_zones": ("porch",)}, r"required zone\(s\) porch not among the camera's zones"),
    ({"min_hits": 0}, "min_hits"),
    ({"end_after_s": 0.1}, "end_after_s"),
])
def test_camera_config_refuses_bad_zones_with_a_clear_message(fields, error):
    with pytest.raises(SchemaError, match=error):
        camera(**fields)


def test_zones_travel_and_a_camera_without_them_encodes_as_before():
    with_zones = camera(zones=(DRIVE,), masks=({"name": "tree", "points": CONCAVE, "motion": True},),
                        required_zones=("drive",), min_hits=3)
    assert CameraConfig.decode(with_zones.encode()) == with_zones
    assert with_zones.masks[0].motion and with_zones.zones[0].contains(0.3, 0.3)
    plain = camera()
    assert b"zones" not in plain.encode() and b"min_hits" not in plain.encode()


@pytest.mark.parametrize("box, inside", [
    ((0.3, 0.1, 0.4, 0.5), True),  # bottom centre (0.35, 0.5) in the square
    ((0.3, 0.1, 0.4, 0.7), False),  # stands below it, though the box overlaps it
    ((0.7, 0.3, 0.9, 0.5), False),
])
def test_a_mask_drops_findings_by_their_bottom_centre(box, inside):
    assert masked(box, (Mask(name="m", points=SQUARE),)) is inside


def test_a_motion_mask_blacks_out_its_area_of_the_gate_thumbnail():
    import numpy as np

    thumb = np.full((90, 160), 200, dtype=np.uint8)
    hidden = hide(thumb, [SQUARE])
    assert hidden[36, 64] == 0 and hidden[80, 150] == 200
    assert hide(thumb, []) is thumb


def test_cli_sets_zones_masks_and_required_zones(settings):
    from .helpers import run_cli

    added = run_cli(settings, "camera", "add", "drive", "rtsp://192.0.2.1/x", "--zone", "drive=0.1,0.5,0.4,0.5,0.4,0.9",
                    "--zone", "street=0,0.9,1,0.9,1,1,0,1", "--require-zone", "drive", "--motion-mask",
                    "tree=0.8,0,1,0,1,0.3", "--min-hits", "3", "--end-after", "20")
    assert added.returncode == 0, added.stderr
    shown = json.loads(run_cli(settings, "camera", "show", "drive", "--json").stdout)
    assert [z["name"] for z in shown["zones"]] == ["drive", "street"]
    assert shown["zones"][0]["points"] == [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9]]
    assert shown["masks"] == [{"name": "tree", "points": [[0.8, 0.0], [1.0, 0.0], [1.0, 0.3]], "motion": True}]
    assert (shown["required_zones"], shown["min_hits"], shown["end_after_s"]) == (["drive"], 3, 20.0)

    changed = run_cli(settings, "camera", "set", "drive", "--mask", "bin=0,0,0.1,0,0.1,0.1", "--stationary-after", "60")
    assert changed.returncode == 0, changed.stderr
    assert "masks=bin" in changed.stdout
    shown = json.loads(run_cli(settings, "camera", "show", "drive", "--json").stdout)
    assert [m["name"] for m in shown["masks"]] == ["bin"] and len(shown["zones"]) == 2  # zones kept
    assert shown["stationary_after_s"] == 60.0

    crossing = run_cli(settings, "camera", "set", "drive", "--zone", "bad=0,0,1,1,1,0,0,1")
    assert crossing.returncode == 2
    assert "bad: the polygon crosses itself: edge 1 crosses edge 3" in crossing.stderr
    outside = run_cli(settings, "camera", "set", "drive", "--zone", "far=0,0,1.5,0,1,1")
    assert outside.returncode == 2 and "point 2 (1.5, 0) is outside the picture" in outside.stderr
    unknown = run_cli(settings, "camera", "set", "drive", "--require-zone", "porch")
    assert unknown.returncode == 1 and "required zone(s) porch not among the camera's zones" in unknown.stderr

    cleared = run_cli(settings, "camera", "set", "drive", "--no-zones", "--no-masks")
    assert cleared.returncode == 0, cleared.stderr
    shown = json.loads(run_cli(settings, "camera", "show", "drive", "--json").stdout)
    assert (shown["zones"], shown["masks"], shown["required_zones"]) == ([], [], [])


def test_api_bodies_take_zones_as_json_and_say_what_is_wrong():
    from pydantic import ValidationError

    from spectare.api.models import CameraPatch

    body = {"zones": [{"name": "drive", "points": [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9]]}], "required_zones": ["drive"],
            "masks": [{"name": "tree", "points": [[0.8, 0], [1, 0], [1, 0.3]], "motion": True}]}
    patch = CameraPatch.model_validate_json(json.dumps(body))
    assert CameraPatch.model_validate(body) == patch  # a parsed body (lists) too
    config = CameraConfig.create(name="drive", url="rtsp://192.0.2.1/", **patch.model_dump(exclude_none=True))
    assert config.zones[0].name == "drive" and config.masks[0].motion
    assert "zones" in CameraPatch.model_json_schema()["properties"]
    with pytest.raises(ValidationError, match="zones.0.points\n.*the polygon crosses itself"):
        CameraPatch.model_validate({"zones": [{"name": "x", "points": [[0, 0], [1, 1], [1, 0], [0, 1]]}]})
