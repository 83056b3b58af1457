"""Real footage for tests: the demo video (`make setup` fetches it) that every test clip is cut from."""

import os
from pathlib import Path

from spectare.local.stack import DEMO_SOURCE


def source_video() -> Path:
    """$SPECTARE_DEMO_SOURCE if set, else the demo footage. Never skips: a missing video is a broken
    checkout, so it fails loudly with the fix."""
    path = Path(os.environ.get("SPECTARE_DEMO_SOURCE", DEMO_SOURCE))
    if not path.is_file():
        raise FileNotFoundError(f"demo source video {path} is missing; run `make setup` to fetch it")
    return path
