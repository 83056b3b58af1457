"""`python -m spectare.indexer`: run the indexer (writer and query service) until SIGINT/SIGTERM."""

from spectare.core.service import run_section_service

from .service import Indexer
from .settings import load_indexer_settings


def main() -> None:
    run_section_service("indexer", load_indexer_settings, lambda ctx, section: Indexer(ctx, section).run())


if __name__ == "__main__":
    main()
