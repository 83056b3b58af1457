"""`python -m spectare.segmenter`: run the segmenter until SIGINT/SIGTERM."""

from spectare.core.service import run_section_service

from .service import Segmenter
from .settings import load_segmenter_settings


def main() -> None:
    run_section_service("segmenter", load_segmenter_settings, lambda ctx, section: Segmenter(ctx, section).run())


if __name__ == "__main__":
    main()
