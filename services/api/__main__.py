"""`python -m spectare.api`: serve the HTTP API until SIGINT/SIGTERM."""

from .service import main

main()
