"""Real footage for tests: the one source video every test camera clip is cut from."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT / "assets" / "demo" / "source.mp4"


def source_video() -> Path:
    """The demo source video: $SPECTARE_DEMO_SOURCE if set, else assets/demo/source.mp4.

    Never skips: a missing video is a broken checkout, so it fails loudly with the fix.
    """
    env = os.environ.get("SPECTARE_DEMO_SOURCE")
    if env:
        path = Path(env)
        if not path.is_file():
            raise FileNotFoundError(f"SPECTARE_DEMO_SOURCE={env} is not a file")
        return path
    if DEFAULT_SOURCE.is_file():
        return DEFAULT_SOURCE
    raise FileNotFoundError(
        f"demo source video {DEFAULT_SOURCE} is missing; run `make setup` to fetch it "
        "(or set SPECTARE_DEMO_SOURCE to a video file)"
    )
