"""`python -m spectare.segmenter`: run the segmenter until SIGINT/SIGTERM."""

import nats.aio.client

from spectare.core.memory import keep_large_blocks
from spectare.core.service import run_section_service

from .service import Segmenter
from .settings import load_segmenter_settings

# nats-py reads its socket in pieces of this many bytes (and its stream reader stops reading at twice that)
NATS_READ_BYTES = 1 << 20


def read_nats_in_large_pieces() -> None:
    """nats-py reads the socket 32 KiB at a time (a module constant, not an option): a 130-500 KB packet group
    then takes 4-16 turns of its read loop, each a pass of its parser and of the event loop, with the socket's
    reading paused and resumed every 64 KiB. Read up to 1 MiB per turn (the reader holds up to 2 MiB): ~10%
    of the event-loop thread's CPU here. Set before the connection is made."""
    if isinstance(getattr(nats.aio.client, "DEFAULT_BUFFER_SIZE", None), int):
        nats.aio.client.DEFAULT_BUFFER_SIZE = max(nats.aio.client.DEFAULT_BUFFER_SIZE, NATS_READ_BYTES)


def main() -> None:
    keep_large_blocks()
    read_nats_in_large_pieces()
    run_section_service("segmenter", load_segmenter_settings, lambda ctx, section: Segmenter(ctx, section).run())


if __name__ == "__main__":
    main()
