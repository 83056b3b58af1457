"""`python -m spectare.indexer`: run the indexer (writer and query service) until SIGINT/SIGTERM."""

import sys

from spectare.core.errors import SpectareError
from spectare.core.service import run_service

from .service import Indexer
from .settings import load_indexer_settings


def main() -> None:
    try:
        ix = load_indexer_settings()
    except SpectareError as exc:
        print(f"spectare-indexer: error: {exc}", file=sys.stderr)
        sys.exit(1)
    run_service("indexer", lambda ctx: Indexer(ctx, ix).run())


if __name__ == "__main__":
    main()
