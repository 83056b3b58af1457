"""`python -m spectare.segmenter`: run the segmenter until SIGINT/SIGTERM."""

import sys

from spectare.core.errors import SpectareError
from spectare.core.service import run_service

from .service import Segmenter
from .settings import load_segmenter_settings


def main() -> None:
    try:
        seg = load_segmenter_settings()
    except SpectareError as exc:
        print(f"spectare-segmenter: error: {exc}", file=sys.stderr)
        sys.exit(1)
    run_service("segmenter", lambda ctx: Segmenter(ctx, seg).run())


if __name__ == "__main__":
    main()
