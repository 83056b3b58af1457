"""`python -m spectare.segmenter`: run the segmenter until SIGINT/SIGTERM."""

import ctypes
import os
import platform

import nats.aio.client

from spectare.core.service import run_section_service

from .service import Segmenter
from .settings import load_segmenter_settings

# mallopt(3) parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_large_blocks() -> None:
    """Let glibc's malloc reuse large blocks instead of mapping fresh, zero-filled pages for each.

    By default every block of 128 KiB or more (a chunk being muxed, its 5 MB upload body, a NATS read) is
    mapped when allocated and unmapped when freed, and a free heap top is handed back to the kernel: every
    chunk then page-faults through its memory again, ~3 ms of CPU per 10 s 1080p chunk here (a third of
    storing it). Blocks up to 32 MiB now come from the heap, and up to 64 MiB of free heap is kept. Nothing
    happens under another C library, or when the environment tunes malloc itself."""
    if platform.libc_ver()[0] != "glibc":
        return
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")) or \
            "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    mallopt(_M_TRIM_THRESHOLD, 64 << 20)


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
