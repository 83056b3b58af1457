"""The camera registry over a real NATS: the API, the watch, and the `spectare camera` CLI."""

import asyncio
import json

import pytest

from spectare.core.errors import CameraExists, CameraNotFound
from spectare.core.registry import CameraRegistry
from spectare.schemas import CameraConfig

from .helpers import run_cli as spectare

SECRET = "s3cr3t-Pa55"


async def test_add_get_list_remove(js, settings):
    registry = await CameraRegistry.open(js, settings)
    assert await registry.list() == []
    added = await registry.add(CameraConfig(name="porch", url=f"rtsp://admin:{SECRET}@192.0.2.7/s1", detect=False))
    assert added.created_at > 0
    await registry.add(CameraConfig(name="drive", url="rtsp://192.0.2.8/s1", segment_seconds=4))
    got = await registry.get("porch")
    assert got.url == f"rtsp://admin:{SECRET}@192.0.2.7/s1", "the registry must keep credentials for ingest"
    assert got.detect is False
    assert [c.name for c in await registry.list()] == ["drive", "porch"]
    with pytest.raises(CameraExists, match="'porch' already exists"):
        await registry.add(CameraConfig(name="porch", url="rtsp://elsewhere/"))
    await registry.remove("porch")
    with pytest.raises(CameraNotFound):
        await registry.get("porch")
    with pytest.raises(CameraNotFound):
        await registry.remove("porch")
    assert [c.name for c in await registry.list()] == ["drive"]


async def test_unreadable_entry_is_skipped_not_fatal(js, settings):
    registry = await CameraRegistry.open(js, settings)
    await registry.add(CameraConfig(name="good", url="rtsp://192.0.2.1/"))
    await registry.kv.put("garbage", b"\xc1 not msgpack")
    assert [c.name for c in await registry.list()] == ["good"]


async def test_watch_sees_existing_then_changes(js, settings):
    registry = await CameraRegistry.open(js, settings)
    await registry.add(CameraConfig(name="first", url="rtsp://192.0.2.1/"))
    changes = registry.watch()
    first = await asyncio.wait_for(anext(changes), 5)
    assert (first.name, first.config.url) == ("first", "rtsp://192.0.2.1/")
    await registry.put(CameraConfig(name="first", url="rtsp://192.0.2.2/"))
    updated = await asyncio.wait_for(anext(changes), 5)
    assert updated.config.url == "rtsp://192.0.2.2/" and updated.revision > first.revision
    await registry.remove("first")
    removed = await asyncio.wait_for(anext(changes), 5)
    assert (removed.name, removed.config) == ("first", None)
    await changes.aclose()


def test_cli_round_trip_never_shows_the_password(settings):
    url = f"rtsp://u:{SECRET}@127.0.0.1:9/x"
    added = spectare(settings, "camera", "add", "cam-x", url, "--friendly-name", "Back yard", "--no-detect")
    assert added.returncode == 0, added.stderr
    assert "cam-x" in added.stdout
    listed = spectare(settings, "camera", "list")
    assert listed.returncode == 0
    assert "cam-x" in listed.stdout and "Back yard" in listed.stdout and "rtsp://u:***@127.0.0.1:9/x" in listed.stdout
    as_json = json.loads(spectare(settings, "camera", "list", "--json").stdout)
    assert [(c["name"], c["url"], c["detect"]) for c in as_json] == [("cam-x", "rtsp://u:***@127.0.0.1:9/x", False)]
    shown = json.loads(spectare(settings, "camera", "show", "cam-x", "--json").stdout)
    assert shown["friendly_name"] == "Back yard"
    duplicate = spectare(settings, "camera", "add", "cam-x", url)
    assert duplicate.returncode == 1
    assert duplicate.stderr.strip() == (
        "spectare: error: camera 'cam-x' already exists; remove it first or pick another name"
    )
    assert spectare(settings, "camera", "rm", "cam-x").returncode == 0
    gone = spectare(settings, "camera", "show", "cam-x")
    assert gone.returncode == 1 and "no camera named 'cam-x'" in gone.stderr
    for result in (added, listed, duplicate, gone):
        assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("name", ["Front Door", "cam.1", "_x", "x" * 64])
def test_cli_refuses_invalid_names(settings, name):
    result = spectare(settings, "camera", "add", name, "rtsp://192.0.2.1/")
    assert result.returncode == 2
    assert "invalid camera name" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_refuses_a_non_rtsp_url_without_echoing_it(settings):
    result = spectare(settings, "camera", "add", "cam", f"ftp://u:{SECRET}@host/")
    assert result.returncode == 1
    assert "URL must start with rtsp://" in result.stderr
    assert SECRET not in result.stderr


def test_cli_with_nats_unreachable_says_so_in_one_line(settings):
    env_settings = settings.model_copy(update={"nats": settings.nats.model_copy(update={"url": "nats://127.0.0.1:9"})})
    result = spectare(env_settings, "camera", "list")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("spectare: error: NATS at nats://127.0.0.1:9 is unreachable")


def test_cli_detection_settings_add_and_set(settings):
    url = f"rtsp://u:{SECRET}@127.0.0.1:9/x"
    added = spectare(settings, "camera", "add", "drive", url, "--labels", "Person, car", "--min-score", "0.6",
                     "--no-motion-gate")
    assert added.returncode == 0, added.stderr
    shown = json.loads(spectare(settings, "camera", "show", "drive", "--json").stdout)
    assert (shown["labels"], shown["min_score"], shown["motion_gate"], shown["detect"]) == (
        ["person", "car"], 0.6, False, True)

    changed = spectare(settings, "camera", "set", "drive", "--labels", "all", "--no-detect",
                       "--url", f"rtsp://u:{SECRET}@127.0.0.1:9/y")
    assert changed.returncode == 0, changed.stderr
    assert SECRET not in changed.stdout and "detect=False" in changed.stdout and "labels=all" in changed.stdout
    shown = json.loads(spectare(settings, "camera", "show", "drive", "--json").stdout)
    assert (shown["labels"], shown["min_score"], shown["detect"]) == ([], 0.6, False), "unchanged ones are kept"
    assert shown["url"] == "rtsp://u:***@127.0.0.1:9/y"

    back = spectare(settings, "camera", "set", "drive", "--labels", "default")
    assert back.returncode == 0
    assert json.loads(spectare(settings, "camera", "show", "drive", "--json").stdout)["labels"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["camera", "set", "drive"], "nothing to change"),
        (["camera", "set", "drive", "--labels", "per/son"], "invalid label"),
        (["camera", "set", "drive", "--min-score", "2"], "0.01<=x<=1.0"),
        (["camera", "set", "nosuch", "--detect"], "no camera named 'nosuch'"),
    ],
)
def test_cli_set_refuses_bad_input(settings, args, message):
    spectare(settings, "camera", "add", "drive", "rtsp://127.0.0.1:9/x")
    result = spectare(settings, *args)
    assert result.returncode != 0
    assert message in result.stderr


async def test_list_sees_every_camera_right_after_it_is_written(js, settings):
    """Listing reads the bucket's stream state: a camera written a moment ago is always there, a removed one not."""
    registry = await CameraRegistry.open(js, settings)
    for i in range(20):
        await registry.put(CameraConfig(name=f"c{i}", url="rtsp://192.0.2.1/x", detect=False))
        assert [c.name for c in await registry.list()] == sorted(f"c{j}" for j in range(i + 1))
    await registry.remove("c3")
    assert "c3" not in [c.name for c in await registry.list()]
