"""Object detection models behind one interface.

Every backend takes a batch of BGR images (numpy uint8, HxWx3, any sizes) and returns, per image, a list
of `Found`: class id, COCO label as a subject token, score, and a box normalised to 0..1 of that image.

Backends:
  - `OpenCvYolo`: Darknet YOLO (COCO YOLOv4-tiny by default, installed by `make setup`) on OpenCV DNN;
    CPU, or OpenCV's CUDA backend when the installed OpenCV was built with it.
  - `UltralyticsYolo`: any model file the `ultralytics` package loads (.pt, .onnx, .engine), on CUDA,
    a Jetson's GPU or TensorRT when present, offline.

`load_detector(settings)` builds the configured one, or raises ModelError naming the file.
"""

import os
import re
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from spectare.core.errors import InvalidName, ModelError
from spectare.detector.settings import DetectorSettings
from spectare.schemas.names import label_token


@dataclass(frozen=True, slots=True)
class Found:
    """One detected object in one image."""

    class_id: int
    label: str  # label token, e.g. "person", "traffic_light"
    score: float  # 0..1
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 normalised to 0..1 of the image, clipped


class ObjectDetector(Protocol):
    name: str  # model name reported in Detection.model, e.g. "yolov4-tiny", "yolov8n"
    device: str  # where it runs, for logs and benchmarks: "cpu", "opencv-cuda", "cuda:0", ...
    labels: tuple[str, ...]  # label token per class id

    def detect(self, images: Sequence[np.ndarray], min_score: float) -> list[list[Found]]:
        """Per image (BGR uint8 HxWx3, any sizes), its objects scoring at least min_score, best first.
        One call at a time: a detector is not thread-safe."""
        ...


def load_detector(settings: DetectorSettings) -> ObjectDetector:
    """The configured backend, loaded and run once; raises ModelError naming the file that is wrong."""
    backend = UltralyticsYolo if settings.backend == "ultralytics" else OpenCvYolo
    s = settings
    return backend(s.model_path, input_size=s.input_size, nms_iou=s.nms_iou, device=s.device)


def _clip_box(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float, float, float]:
    return tuple(min(max(float(v), 0.0), 1.0) for v in (x1, y1, x2, y2))  # type: ignore[return-value]


# Darknet's coco.names predates the COCO names later models use; one vocabulary, whatever the backend, so
# that a camera's `--labels motorcycle` and an alert on detections.*.motorcycle work with either.
_COCO_NAMES = {"motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch", "pottedplant": "potted_plant",
               "diningtable": "dining_table", "tvmonitor": "tv"}


def _label_tokens(names: Sequence[str], source: Path) -> tuple[str, ...]:
    try:
        return tuple(_COCO_NAMES.get(token, token) for token in (label_token(name) for name in names))
    except InvalidName as e:
        raise ModelError(f"{source}: class name not usable as a label: {e}") from None


_CUDA_DEVICE = re.compile(r"cuda(?::(\d+))?")


# ---------------------------------------------------------------------------------------------------------------
# OpenCV DNN (Darknet YOLO)

# OpenCV's YOLO layer zeroes class scores below the [yolo] section's `thresh` (0.2 when unset), which would
# hide detections a camera asks for with a lower min_score: the cfg is loaded with this threshold instead.
_CFG_THRESH = 0.001


class OpenCvYolo:
    """Darknet YOLO (v3/v4, tiny or full) on OpenCV DNN.

    `folder` holds `<name>.cfg`, `<name>.weights` and the class names (`<name>.names`, else `coco.names`), one
    a line. Images are stretched to input_size x input_size (as Darknet does), run as one batch, and
    non-maximum suppression is done per class. The weights' size is checked against the cfg (OpenCV reads
    a truncated file without complaint), and the net runs once at load so that a broken file fails here.
    """

    def __init__(self, folder: Path | str, *, input_size: int = 416, nms_iou: float = 0.45, device: str = "auto"):
        folder = Path(folder)
        cfg, weights, names = _darknet_files(folder)
        self.name = cfg.stem
        self.labels = _label_tokens(_read_names(names), names)
        self.input_size = input_size
        self.nms_iou = nms_iou
        cuda = _opencv_cuda(device)
        self._net = _read_darknet(cfg, weights)
        if cuda:
            self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
            targets = cv2.dnn.getAvailableTargets(cv2.dnn.DNN_BACKEND_CUDA)
            fp16 = cv2.dnn.DNN_TARGET_CUDA_FP16 in targets
            self._net.setPreferableTarget(cv2.dnn.DNN_TARGET_CUDA_FP16 if fp16 else cv2.dnn.DNN_TARGET_CUDA)
        else:
            self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            self._net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        self.device = "opencv-cuda" if cuda else "cpu"
        self._outputs = self._net.getUnconnectedOutLayersNames()
        try:
            rows = self._forward([np.zeros((input_size, input_size, 3), np.uint8)])
        except cv2.error as e:
            raise ModelError(f"{cfg}: the net does not run with {weights.name}: {_cv_reason(e)}") from None
        classes = rows.shape[-1] - 5
        if classes != len(self.labels):
            raise ModelError(f"{names}: {len(self.labels)} class names, but {cfg} has {classes} classes")

    def detect(self, images: Sequence[np.ndarray], min_score: float) -> list[list[Found]]:
        if len(images) == 0:
            return []
        return [self._parse(rows, min_score) for rows in self._forward(images)]

    def _forward(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Rows (cx, cy, w, h, objectness, score per class), normalised, shaped (images, rows, 5 + classes)."""
        size = (self.input_size, self.input_size)
        self._net.setInput(cv2.dnn.blobFromImages(list(images), 1 / 255, size, swapRB=True, crop=False))
        outs = self._net.forward(self._outputs)
        # One image gives (rows, 5 + classes) per output layer, a batch (images, rows, 5 + classes).
        return np.concatenate([out.reshape(len(images), -1, out.shape[-1]) for out in outs], axis=1)

    def _parse(self, rows: np.ndarray, min_score: float) -> list[Found]:
        class_scores = rows[:, 5:]  # already objectness x class probability
        class_ids = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(rows)), class_ids]
        keep = scores >= min_score
        if not keep.any():
            return []
        rows, class_ids, scores = rows[keep], class_ids[keep], scores[keep]
        xywh = np.stack(
            [rows[:, 0] - rows[:, 2] / 2, rows[:, 1] - rows[:, 3] / 2, rows[:, 2], rows[:, 3]], axis=1
        ).astype(np.float64)
        scores, class_ids = scores.astype(np.float32), class_ids.astype(np.int32)
        picked = cv2.dnn.NMSBoxesBatched(xywh, scores, class_ids, min_score, self.nms_iou)  # type: ignore[arg-type]
        kept = np.asarray(picked, dtype=np.int64).reshape(-1)
        kept = kept[np.argsort(-scores[kept], kind="stable")]
        found = []
        for i in kept:
            x, y, w, h = xywh[i]
            c = int(class_ids[i])
            found.append(Found(c, self.labels[c], float(scores[i]), _clip_box(x, y, x + w, y + h)))
        return found


def _darknet_files(folder: Path) -> tuple[Path, Path, Path]:
    if not folder.exists():
        raise ModelError(f"{folder}: model folder not found (`make setup` installs the default one)")
    if not folder.is_dir():
        raise ModelError(f"{folder}: not a folder; the opencv backend takes a folder with <name>.cfg, .weights, .names")
    cfgs = sorted(folder.glob("*.cfg"))
    if not cfgs:
        raise ModelError(f"{folder}: no Darknet .cfg file in the model folder")
    if len(cfgs) > 1:
        raise ModelError(f"{folder}: several .cfg files ({', '.join(c.name for c in cfgs)}); keep one")
    cfg = cfgs[0]
    weights = cfg.with_suffix(".weights")
    if not weights.is_file():
        raise ModelError(f"{weights}: weights file not found (needed beside {cfg.name})")
    names = cfg.with_suffix(".names")
    if not names.is_file():
        names = folder / "coco.names"
    if not names.is_file():
        raise ModelError(f"{names}: class names file not found (one name a line, or {cfg.stem}.names)")
    return cfg, weights, names


def _read_names(path: Path) -> list[str]:
    try:
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: class names unreadable ({e})") from None
    if not names:
        raise ModelError(f"{path}: no class names in the file")
    return names


def _opencv_cuda(device: str) -> bool:
    """Whether to run on OpenCV's CUDA backend; ModelError for a CUDA device this OpenCV cannot use."""
    wanted = device.strip().lower()
    try:
        count = cv2.cuda.getCudaEnabledDeviceCount()
    except (AttributeError, cv2.error):
        count = 0
    usable = count > 0 and len(cv2.dnn.getAvailableTargets(cv2.dnn.DNN_BACKEND_CUDA)) > 0
    if wanted == "auto":
        return usable
    if wanted == "cpu":
        return False
    match = _CUDA_DEVICE.fullmatch(wanted)
    if match is None:
        raise ModelError(f"device {device!r}: unknown; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not usable:
        raise ModelError(
            f"device {device!r}: this OpenCV ({cv2.__version__}) has no CUDA DNN backend or sees no GPU "
            "(pip's opencv builds are CPU-only); use device 'auto' or 'cpu', or backend 'ultralytics'"
        )
    index = int(match.group(1) or 0)
    if index >= count:
        raise ModelError(f"device {device!r}: OpenCV sees {count} CUDA device(s)")
    cv2.cuda.setDevice(index)
    return True


def _read_darknet(cfg: Path, weights: Path) -> Any:
    try:
        cfg_text = cfg.read_bytes().decode("utf-8")
        weight_bytes = weights.read_bytes()
    except UnicodeDecodeError:
        raise ModelError(f"{cfg}: not a Darknet cfg (not text)") from None
    except OSError as e:
        raise ModelError(f"{e.filename}: unreadable ({e.strerror})") from None
    header = _weights_header_size(weight_bytes)
    if header is None:
        raise ModelError(f"{weights}: not Darknet weights (only {len(weight_bytes)} bytes)")
    try:
        net = cv2.dnn.readNetFromDarknet(
            np.frombuffer(_low_thresh(cfg_text).encode(), np.uint8), np.frombuffer(weight_bytes, np.uint8)
        )
    except cv2.error as e:
        bad = weights if "Weights" in str(e) else cfg
        raise ModelError(f"{bad}: not a usable Darknet {bad.suffix[1:]} file: {_cv_reason(e)}") from None
    if net.empty():
        raise ModelError(f"{cfg}: no layers in the Darknet cfg")
    # The weights are a header and then, layer after layer, every parameter as float32; OpenCV loads them
    # into the layers' blobs (the anchors of the YOLO layers come from the cfg).
    params = sum(
        blob.size
        for layer in (net.getLayer(name) for name in net.getLayerNames())
        if layer.type != "Region"
        for blob in layer.blobs
    )
    expected = header + 4 * params
    if len(weight_bytes) != expected:
        what = "truncated" if len(weight_bytes) < expected else "too long: not the weights of this cfg"
        raise ModelError(f"{weights}: {what} ({len(weight_bytes)} bytes; {cfg.name} needs {expected})")
    return net


def _weights_header_size(data: bytes) -> int | None:
    """Darknet weights start with int32 major, minor, revision and the images seen (int64 from version 0.2)."""
    if len(data) < 16:
        return None
    major, minor, _revision = struct.unpack_from("<3i", data)
    return 20 if major * 10 + minor >= 2 and major < 1000 and minor < 1000 else 16


def _low_thresh(cfg_text: str) -> str:
    out: list[str] = []
    in_yolo = False
    for line in cfg_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            in_yolo = stripped.lower() in ("[yolo]", "[region]")
            out.append(line)
            if in_yolo:
                out.append(f"thresh={_CFG_THRESH}")
        elif not (in_yolo and re.match(r"thresh\s*=", stripped)):
            out.append(line)
    return "\n".join(out) + "\n"


def _cv_reason(error: cv2.error) -> str:
    """The useful part of an OpenCV error: `(-215:Assertion failed) ... in function 'f'`."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    last = lines[-1] if lines else repr(error)
    return last.split("error: ", 1)[-1].strip()


# ---------------------------------------------------------------------------------------------------------------
# Ultralytics


class UltralyticsYolo:
    """Any detection model file the `ultralytics` package loads (.pt, .onnx, .engine, ...), offline.

    Needs the `ultralytics` extra. Ultralytics is told never to go online nor install anything
    (YOLO_OFFLINE, YOLO_AUTOINSTALL) and to keep its settings in a writable folder (YOLO_CONFIG_DIR: the
    given one, else the Spectare state folder, else a temporary one); all are set before its first import.
    Device 'auto' is the first CUDA GPU torch sees (a Jetson's too), else the CPU; on CUDA it runs in
    half precision. TensorRT .engine files need CUDA. The model runs once at load, so that a broken file
    fails here and not at the first keyframe.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        input_size: int = 640,
        nms_iou: float = 0.45,
        device: str = "auto",
        config_dir: Path | None = None,
    ):
        path = Path(path)
        if not path.exists():
            raise ModelError(f"{path}: model file not found")
        self.name = path.stem
        self.input_size = input_size
        self.nms_iou = nms_iou
        ultralytics_offline(config_dir)
        try:
            import torch
            from ultralytics import YOLO
            from ultralytics.cfg import DEFAULT_CFG_DICT
        except ImportError as e:
            raise ModelError(
                f"backend 'ultralytics' needs the ultralytics package ({e}): pip install 'spectare[ultralytics]' "
                "or make setup EXTRAS=...,ultralytics"
            ) from None
        self.device = _torch_device(device, torch)
        cuda = self.device.startswith("cuda")
        if path.suffix.lower() == ".engine" and not cuda:
            raise ModelError(f"{path}: a TensorRT engine needs a CUDA GPU (device {device!r} is {self.device})")
        # FP16 on CUDA: `quantize=16` from ultralytics 8.4 on (which warns at every call given `half`), `half` before.
        self._precision: dict[str, Any] = {}
        if cuda:
            self._precision = {"quantize": 16} if "quantize" in DEFAULT_CFG_DICT else {"half": True}
        try:
            self._model = YOLO(str(path), task="detect")
            warm_up = self._predict([np.zeros((input_size, input_size, 3), np.uint8)], 0.5)
            names = self._model.names
        except ModuleNotFoundError as e:  # ultralytics imports a format's runtime (onnxruntime, tensorrt) on use
            raise ModelError(f"{path}: loading it needs the Python package {e.name!r}, not installed") from None
        except Exception as e:  # torch, onnx and TensorRT raise anything for a broken file
            reason = " ".join(str(e).split())[:300] or type(e).__name__
            raise ModelError(f"{path}: cannot load the model ({type(e).__name__}: {reason})") from None
        if warm_up[0].boxes is None:
            raise ModelError(f"{path}: not a detection model (its task is {self._model.task!r})")
        self.labels = _label_tokens([names[i] for i in range(len(names))], path)

    def detect(self, images: Sequence[np.ndarray], min_score: float) -> list[list[Found]]:
        if len(images) == 0:
            return []
        found = []
        for result in self._predict(images, min_score):
            boxes = result.boxes
            xyxyn = boxes.xyxyn.cpu().numpy().astype(np.float64)
            scores = boxes.conf.cpu().numpy().astype(np.float64)
            class_ids = boxes.cls.cpu().numpy().astype(np.int64)
            order = np.argsort(-scores, kind="stable")
            found.append(
                [
                    Found(int(class_ids[i]), self.labels[class_ids[i]], float(scores[i]), _clip_box(*xyxyn[i]))
                    for i in order
                    if scores[i] >= min_score
                ]
            )
        return found

    def _predict(self, images: Sequence[np.ndarray], min_score: float) -> list[Any]:
        return list(self._model.predict(
            list(images),
            imgsz=self.input_size,
            conf=min_score,
            iou=self.nms_iou,
            device=self.device,
            verbose=False,
            **self._precision,
        ))


def ultralytics_offline(config_dir: Path | None = None) -> None:
    """Tell ultralytics, before its first import, never to go online or install anything, and where it may
    keep its settings."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ.setdefault("YOLO_VERBOSE", "False")
    if "YOLO_CONFIG_DIR" not in os.environ or config_dir is not None:
        if config_dir is None:
            state = os.environ.get("SPECTARE_STATE_DIR")
            base = Path(state) if state else Path(tempfile.gettempdir()) / f"spectare-{os.getuid()}"
            config_dir = base / "ultralytics"
        config_dir.mkdir(parents=True, exist_ok=True)
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir)


def _torch_device(device: str, torch: Any) -> str:
    wanted = device.strip().lower()
    cuda = torch.cuda.is_available()
    if wanted == "auto":
        return "cuda:0" if cuda else "cpu"
    if wanted == "cpu":
        return "cpu"
    match = _CUDA_DEVICE.fullmatch(wanted)
    if match is None:
        raise ModelError(f"device {device!r}: unknown; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not cuda:
        raise ModelError(f"device {device!r}: torch {torch.__version__} sees no CUDA GPU; use device 'auto' or 'cpu'")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ModelError(f"device {device!r}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    return f"cuda:{index}"
