"""Ingest settings: `[ingest]` in the config file, `SPECTARE_INGEST__<FIELD>` in the environment (see
`spectare.core.config.SectionSettings`). `max_cameras` comes from the core's `IngestCapacity`, where the API
reads it too (its scaling signal) without importing this package."""

from typing import Annotated, Literal

from pydantic import Field

from spectare.core.config import IngestCapacity


class IngestSettings(IngestCapacity):
    open_timeout_s: Annotated[float, Field(gt=0, le=120)] = Field(
        default=10.0, description="seconds to wait for a camera to answer when connecting"
    )
    read_timeout_s: Annotated[float, Field(gt=0, le=120)] = Field(
        default=5.0, description="seconds without a packet before a connection counts as dead"
    )
    reconnect_min_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=0.5, description="first reconnect delay; doubles per failure"
    )
    reconnect_max_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=30.0, description="longest reconnect delay"
    )
    max_bytes_in_flight: Annotated[int, Field(ge=64 * 1024, le=1 << 30)] = Field(
        default=8 * 1024 * 1024, description="unacknowledged bytes per camera before publishing waits"
    )
    max_msgs_in_flight: Annotated[int, Field(ge=1, le=10000)] = Field(
        default=1,
        description="unacknowledged messages per camera before publishing waits. 1 keeps a camera's packets in "
        "order in the stream through any failure (with more, a message resent after a lost node's election lands "
        "after later ones, and the segmenter sees a hole); a camera sends a few messages a second, and its "
        "connection is read on meanwhile (read_ahead_bytes)",
    )
    ack_timeout_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=5.0, description="seconds to wait for JetStream to acknowledge one publish"
    )
    publish_deadline_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=60.0, description="how long one message is retried before the session is given up"
    )
    group_max_s: Annotated[float, Field(ge=0, le=5)] = Field(
        default=1.0,
        description="packets wait at most this long to travel together in one message (0: one each); a keyframe "
        "always sends the group before it, so chunks (cut at keyframes) never wait for this",
    )
    live_group_max_s: Annotated[float, Field(ge=0, le=5)] = Field(
        default=0.2,
        description="group_max_s for a camera while someone watches it live (a browser's live view, marked by the "
        "API in the `live` bucket): a frame waits in its group before anyone sees it",
    )
    group_max_bytes: Annotated[int, Field(ge=1, le=4 * 1024 * 1024)] = Field(
        default=2 * 1024 * 1024, description="a packet group is sent once it holds this many bytes"
    )
    info_repeat_s: Annotated[float, Field(ge=1, le=600)] = Field(
        default=60.0, description="StreamInfo is published again this often, well inside the packet buffer's age"
    )
    rtsp_client: Literal["spectare", "ffmpeg"] = Field(
        default="spectare",
        description="who reads rtsp:// cameras: 'spectare' (its own client: RTP over TCP, H.264/H.265, a fraction of "
        "FFmpeg's CPU; a stream it cannot read goes to FFmpeg by itself) or 'ffmpeg' (FFmpeg's, via PyAV) for all",
    )
    read_interval_s: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.1,
        description="Spectare's RTSP client reads a camera's socket at most this often, taking all that arrived: "
        "fewer, larger reads cost far less CPU, for at most this much delay",
    )
    read_ahead_bytes: Annotated[int, Field(ge=1024 * 1024, le=1024 * 1024 * 1024)] = Field(
        default=32 * 1024 * 1024,
        description="a camera's connection is read on while publishing waits (a NATS node lost, a leader elected), "
        "up to this many bytes per camera (~60 s at 4 Mbit/s); a camera not read drops what it cannot send",
    )
    audio_wait_s: Annotated[float, Field(ge=0, le=5)] = Field(
        default=0.5,
        description="a keyframe waits at most this long (media time) for the audio to reach it, and audio for the "
        "video, so each audio packet is recorded on the right side of a chunk cut; a camera whose audio stops still "
        "records its video after this delay",
    )
    probe_size: Annotated[int, Field(ge=2048, le=50_000_000)] = Field(
        default=32768, description="bytes FFmpeg reads to find the stream format (small = fast connect; FFmpeg client)"
    )
