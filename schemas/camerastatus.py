"""What ingest says about each camera it holds: `CameraStatus`, the value of the `camera_status` KV bucket (key: the
camera's name), written by the ingest worker holding the camera on every state change, and read by the API's
/stats and `spectare camera list` to say why a camera does not record."""

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from .messages import Camera, Message

CameraState = Literal["connecting", "streaming", "retrying", "stopped"]
CAMERA_STATES: tuple[CameraState, ...] = ("connecting", "streaming", "retrying", "stopped")

# Why the last attempt to read a camera failed. `unreachable`: no route to the host or an unknown name; `timeout`:
# no answer in time; `unauthorized`: credentials missing or refused (RTSP 401/403); `not_found`: no such stream
# (RTSP 404, a missing file); `no_video`: the stream has no (decodable) video track; `ended`: the camera closed a
# stream that was playing, or stopped sending; `unsupported`: a codec or transport Spectare does not record.
ErrorKind = Literal["refused", "unreachable", "timeout", "unauthorized", "not_found", "no_video", "ended",
                    "unsupported", "other"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("refused", "unreachable", "timeout", "unauthorized", "not_found", "no_video",
                                      "ended", "unsupported", "other")
MAX_ERROR_CHARS = 500


class CameraStatus(Message):
    """One camera as its ingest worker sees it: reading it, or failing to and why."""

    KIND: ClassVar[str] = "camera_status"
    camera: Camera
    worker: str = Field(min_length=1, max_length=200, description="id of the ingest worker that wrote this")
    state: CameraState = Field(description="connecting: first attempt after claiming the camera; streaming: a "
                               "session is open; retrying: the last attempt failed (error says why); stopped: the "
                               "worker no longer reads the camera")
    since: float = Field(description="when the camera entered this state (Unix seconds)")
    attempts: Annotated[int, Field(ge=0)] = Field(default=0, description="failed attempts in a row")
    error_kind: ErrorKind | None = Field(default=None, description="why the last attempt failed; None: no failure")
    error: str | None = Field(default=None, max_length=MAX_ERROR_CHARS,
                              description="the failure in one line, URL passwords masked by the writer "
                              "(spectare.core.redact)")
    session: str | None = Field(default=None, max_length=64, description="the open session, while streaming")
    updated_at: float = Field(description="when this was written (Unix seconds); rewritten while the state lasts")
