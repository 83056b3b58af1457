"""The alert subscriber shown in the README, run as written: it receives a person detection."""

import asyncio
import os
import re
import sys
from pathlib import Path

import nats

from spectare.schemas import Detection

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_subscriber() -> str:
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    subscriber = [b for b in blocks if "detections.*.person" in b]
    assert len(subscriber) == 1, "the README shows one alert subscriber"
    return subscriber[0]


async def test_the_readme_alert_subscriber_receives_person_detections(nats_server, tmp_path):
    script = tmp_path / "alerts.py"
    script.write_text(readme_subscriber())
    assert len(readme_subscriber().strip().splitlines()) <= 12, "the README promises about ten lines"
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE,
                                                env={**os.environ, "NATS_URL": nats_server.url})
    nc = await nats.connect(nats_server.url)
    try:
        person = Detection(camera="porch", time=1795845752.5, label="person", class_id=0, score=0.87,
                           box=(0.1, 0.2, 0.3, 0.9), model="yolov4-tiny", session="s", seq=15,
                           snapshot_key="snapshots/porch/x.jpg")
        car = person.model_copy(update={"label": "car", "class_id": 2})
        line = b""
        for _ in range(100):  # until the subscriber is connected and subscribed
            await nc.publish("detections.porch.car", car.encode())  # not a person: never printed
            await nc.publish("detections.porch.person", person.encode())
            await nc.flush()
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), 0.2)
                break
            except TimeoutError:
                continue
        # A car published just before each person would come first if the subscriber took every label.
        assert line.decode().strip() == "person on porch (87%), snapshot snapshots/porch/x.jpg"
    finally:
        await nc.close()
        proc.kill()
        await proc.wait()
