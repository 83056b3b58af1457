"""The detector's own settings: `[detector]` in the config file, `SPECTARE_DETECTOR__<FIELD>` in the
environment (see `spectare.core.config.SectionSettings`); NATS, S3 and the prefix come from the shared
`Settings`. Per-camera choices (detection on/off, labels, minimum score, motion gate) live in the camera
registry; the values here are the defaults for cameras that leave them unset."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from spectare.core.config import ASSETS_DIR, SectionSettings
from spectare.schemas.names import label_token

DEFAULT_MODEL_DIR = ASSETS_DIR / "models" / "yolov4-tiny"
DEFAULT_LABELS = ("person", "bicycle", "car", "motorcycle", "bus", "truck")


class DetectorSettings(SectionSettings):
    model_config = SettingsConfigDict(env_prefix="SPECTARE_DETECTOR__")

    @classmethod
    def section(cls) -> str:
        return "detector"

    backend: Literal["opencv", "ultralytics"] = Field(
        default="opencv",
        description="'opencv': COCO YOLOv4-tiny (Darknet files) on OpenCV DNN, CPU or OpenCV's CUDA backend; "
        "'ultralytics': any YOLO model file (.pt/.onnx/.engine), needs the `ultralytics` extra",
    )
    model_path: Path = Field(
        default=DEFAULT_MODEL_DIR,
        description="opencv: a folder holding <name>.cfg, <name>.weights and coco.names (installed by make setup); "
        "ultralytics: the model file",
    )
    device: str = Field(
        default="auto",
        description="'auto' picks CUDA (or a Jetson's GPU) when present, else CPU; or 'cpu', 'cuda', 'cuda:1'",
    )
    input_size: Annotated[int, Field(ge=128, le=1920, multiple_of=32)] = Field(
        default=416, description="network input size in pixels (square)"
    )
    nms_iou: Annotated[float, Field(gt=0, lt=1)] = Field(
        default=0.45, description="boxes of one class overlapping more than this are merged (non-maximum suppression)"
    )
    min_score: Annotated[float, Field(ge=0.01, le=1)] = Field(
        default=0.5, description="default minimum score of a reported detection (a camera may set its own)"
    )
    labels: tuple[str, ...] = Field(
        default=DEFAULT_LABELS, description="default labels to report (a camera may set its own); empty: every label"
    )
    batch_size: Annotated[int, Field(ge=1, le=64)] = Field(
        default=8, description="keyframes of several cameras run through the model together, at most this many"
    )
    concurrent_batches: Annotated[int, Field(ge=1, le=16)] = Field(
        default=2, description="batches worked on at once (one decodes and draws while another is in the model)"
    )
    motion_threshold: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.002,
        description="default share of the downscaled picture that must change for a keyframe to be detected on",
    )
    snapshot_max_width: Annotated[int, Field(ge=160, le=7680)] = Field(
        default=1280, description="snapshots wider than this are scaled down"
    )
    snapshot_quality: Annotated[int, Field(ge=30, le=100)] = Field(default=85, description="snapshot JPEG quality")
    ack_wait_s: Annotated[float, Field(ge=5, le=3600)] = Field(
        default=30.0, description="JetStream gives a keyframe to another replica if not acked within this"
    )
    max_ack_pending: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=256, description="keyframes one consumer may hold un-acked across all replicas"
    )
    publish_timeout_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=5.0, description="longest wait for JetStream to acknowledge one detection"
    )
    upload_timeout_s: Annotated[float, Field(gt=0, le=600)] = Field(
        default=15.0, description="longest one snapshot upload may take before it is retried"
    )

    min_hits: Annotated[int, Field(ge=1, le=30)] = Field(
        default=2, description="keyframes an object must be seen on before its `new` event (a camera may set its own)"
    )
    end_after_s: Annotated[float, Field(ge=1, le=3600)] = Field(
        default=10.0, description="seconds an object may go unseen before its `end` event (a camera may set its own)"
    )
    stationary_after_s: Annotated[float, Field(ge=1, le=86_400)] = Field(
        default=30.0, description="seconds an object's box centre must stay put for it to be stationary (a camera "
        "may set its own); a stationary object sends nothing more until it moves or leaves"
    )
    track_max_jump: Annotated[float, Field(gt=0, le=20)] = Field(
        default=2.0, description="how far an object may land from where its motion predicted it, in box diagonals "
        "per second since it was last seen, and still be the same object"
    )
    snapshot_margin: Annotated[float, Field(ge=0, le=1)] = Field(
        default=0.1, description="score an object's finding must beat its best snapshot's by for a new snapshot"
    )
    end_check_s: Annotated[float, Field(ge=0.2, le=60)] = Field(
        default=2.0, description="how often objects of cameras that sent no keyframe are checked for their end"
    )

    @field_validator("labels")
    @classmethod
    def _label_tokens(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(label_token(label) for label in value)


def load_detector_settings(**overrides: object) -> DetectorSettings:
    """DetectorSettings, with validation problems turned into one readable ConfigError."""
    return DetectorSettings.load(**overrides)
