"""The whole pipeline as a user meets it: an RTSP camera filming a street with people -> ingest, segmenter,
detector, indexer (real subprocesses) -> `spectare search --label person --json` finds an incident whose
chunk URL downloads a playable MP4."""

import json
import urllib.request

import av
import pytest

from spectare.core.registry import CameraRegistry
from spectare.core.store import ensure_bucket
from spectare.schemas import CameraConfig

from .helpers import ServiceProcess, eventually, run_cli


@pytest.mark.slow
async def test_street_camera_to_a_searchable_person_incident_with_playable_footage(js, settings, rtsp_camera,
                                                                                   tmp_path):
    ensure_bucket(settings.s3)
    registry = await CameraRegistry.open(js, settings)
    await registry.put(CameraConfig(name="street", url=rtsp_camera.url("cam2"), segment_seconds=4))
    services = [ServiceProcess(name, settings, tmp_path / f"{name}.log",
                               SPECTARE_INDEXER__DATABASE=str(tmp_path / "index.duckdb")).start()
                for name in ("indexer", "ingest", "segmenter", "detector")]

    def incident_with_footage():
        found = run_cli(settings, "search", "--camera", "street", "--label", "person", "--since", "10m", "--json")
        if found.returncode != 0:
            return None
        # The detector tracks the people it finds, so search answers them as events (one per tracked person);
        # incidents only cover what no event does.
        answer = json.loads(found.stdout)
        incidents = [i for i in answer["events"] + answer["incidents"] if i["chunks"]]
        return incidents[0] if incidents else None

    try:
        incident = await eventually(incident_with_footage, 150, interval=2.0,
                                    what="a tracked person (or incident) with its chunks in the index")
    finally:
        for service in services:
            service.stop()
    assert incident["camera"] == "street" and incident["label"] == "person" and incident["max_score"] >= 0.5
    chunk = incident["chunks"][0]
    assert chunk["start"] <= incident["end"] and chunk["end"] > incident["start"], "the chunk shows the incident"
    with urllib.request.urlopen(chunk["url"], timeout=10) as response:
        data = response.read()
    assert len(data) == chunk["bytes"]
    path = tmp_path / "chunk.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        assert (stream.codec_context.name, stream.codec_context.width) == ("h264", 640)
    assert frames >= 15, "a playable chunk of about 4 s at 15 fps"
    indexer = services[0]
    assert "Traceback" not in indexer.log and "indexer stopped" in indexer.log, indexer.log[-3000:]
