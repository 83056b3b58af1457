"""`python -m spectare.detector`: run the detector until SIGINT/SIGTERM."""

from .service import main

main()
