"""The exception tree every Spectare command and service raises for conditions a user can act on.

Anything derived from SpectareError is printed by the CLI as one line (no traceback) and makes it
exit non-zero; anything else is a bug and keeps its traceback.
"""


class SpectareError(Exception):
    """Base of every error a user can fix (bad input, unreachable endpoint, missing thing)."""


class ConfigError(SpectareError):
    """Settings that cannot work: an unreadable config file, an out-of-range value."""


class InvalidName(SpectareError, ValueError):
    """A camera name or label that is not a valid subject token and S3 key part."""


class SchemaError(SpectareError, ValueError):
    """Bytes that do not decode to the expected message: garbage, wrong kind, unknown version."""


class UnreachableError(SpectareError):
    """A server (NATS, S3, RTSP) that did not answer; the message names the endpoint."""


class NotFoundError(SpectareError):
    """A stored thing (an object, a chunk) that is not there."""


class CameraExists(SpectareError):
    """A camera with that name is already registered."""


class CameraNotFound(NotFoundError):
    """No camera with that name is registered."""


class StackError(SpectareError):
    """The embedded local stack could not start, or is not running."""


class ModelError(SpectareError):
    """A detection model that cannot be loaded: a missing, corrupt or unsupported file (named)."""
