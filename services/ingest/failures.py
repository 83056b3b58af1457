"""What kind of failure stopped a camera (`CameraStatus.error_kind`), decided from the exception alone.

The RTSP client and the FFmpeg reader raise `OpenFailed` with the kind they know at the spot (an errno, an RTSP
status, an FFmpeg error class: the tables below); `failure_kind` maps whatever the camera loop catches."""

import errno
import socket

import av

from spectare.core.errors import UnreachableError
from spectare.schemas import ErrorKind

from .media import SourceEnded
from .rtp import UnsupportedStream


class OpenFailed(UnreachableError):
    """A camera that could not be opened, and which kind of failure it was."""

    def __init__(self, message: str, kind: ErrorKind) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind


_ERRNO_KINDS: dict[int, ErrorKind] = {
    errno.ECONNREFUSED: "refused",
    errno.EHOSTUNREACH: "unreachable",
    errno.ENETUNREACH: "unreachable",
    errno.EHOSTDOWN: "unreachable",
    errno.ENETDOWN: "unreachable",
    errno.EADDRNOTAVAIL: "unreachable",
    errno.ETIMEDOUT: "timeout",
    errno.ENOENT: "not_found",  # file:// sources
    errno.EACCES: "unauthorized",
    errno.EPERM: "unauthorized",
    errno.ECONNRESET: "ended",
    errno.EPIPE: "ended",
}

_READABLE: dict[ErrorKind, str] = {
    # asyncio says "Connect call failed ('10.0.0.5', 554)" for all of these: say what happened instead.
    "refused": "connection refused (nothing listens on that port: wrong port, or the camera's RTSP is off)",
    "unreachable": "no route to the camera (wrong address, or the camera is off the network)",
    "timeout": "no answer (wrong address, or a firewall drops the connection)",
}


def os_error_kind(exc: OSError) -> ErrorKind:
    if isinstance(exc, socket.gaierror):
        return "unreachable"  # the host name does not resolve
    if isinstance(exc, TimeoutError):
        return "timeout"
    return _ERRNO_KINDS.get(exc.errno or 0, "other")


def os_error_text(exc: OSError) -> str:
    """One readable reason for a failed connection."""
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror or exc})"
    return _READABLE.get(os_error_kind(exc)) or exc.strerror or str(exc) or type(exc).__name__


def rtsp_status_kind(status: int) -> ErrorKind:
    """An RTSP error status (RFC 2326 section 7.1.1) as a kind."""
    if status in (401, 403):
        return "unauthorized"
    if status == 404:
        return "not_found"
    if status in (415, 461, 501, 505, 551):  # media type, transport, method, version, option not supported
        return "unsupported"
    return "other"


_FFMPEG_KINDS: tuple[tuple[type[Exception], ErrorKind], ...] = (
    (av.error.HTTPUnauthorizedError, "unauthorized"),  # FFmpeg maps RTSP 401 to its HTTP error codes
    (av.error.HTTPForbiddenError, "unauthorized"),
    (av.error.HTTPNotFoundError, "not_found"),
    (av.error.ProtocolNotFoundError, "unsupported"),
    (av.error.DemuxerNotFoundError, "unsupported"),
    (av.error.EOFError, "ended"),
)


def ffmpeg_error_kind(exc: Exception) -> ErrorKind:
    for kind_of, kind in _FFMPEG_KINDS:
        if isinstance(exc, kind_of):
            return kind
    return os_error_kind(exc) if isinstance(exc, OSError) else "other"


def failure_kind(exc: BaseException) -> ErrorKind:
    """The kind of anything the camera loop catches from opening or reading a camera."""
    if isinstance(exc, OpenFailed):
        return exc.kind
    if isinstance(exc, SourceEnded):
        return "ended"
    if isinstance(exc, UnsupportedStream):
        return "unsupported"
    if isinstance(exc, OSError):
        return os_error_kind(exc)
    return "other"
