"""Process-wide memory allocator settings for services that move megabytes a second."""

import ctypes
import os
import platform

# mallopt(3) parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_large_blocks() -> None:
    """Let glibc's malloc reuse large blocks instead of mapping fresh, zero-filled pages for each.

    By default every block of 128 KiB or more (a chunk being muxed, its 5 MB upload body, a NATS read,
    a packet group being encoded) is mapped when allocated and unmapped when freed, and a free heap top
    is handed back to the kernel: every chunk then page-faults through its memory again, ~3 ms of CPU
    per 10 s 1080p chunk here (a third of storing it). Blocks up to 32 MiB now come from the heap, and
    up to 64 MiB of free heap is kept. Nothing happens under another C library, or when the
    environment tunes malloc itself."""
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
