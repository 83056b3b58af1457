"""Detection model backends on real pictures and real model files (no mocks).

- OpenCvYolo with COCO YOLOv4-tiny (`make setup` installs it) on real photos and demo footage keyframes:
  every object in a hand-drawn table is found with the right label and IoU >= 0.5; a batch equals
  one-by-one; broken model folders and files fail as one ModelError naming the file.
- UltralyticsYolo: no package ships trained YOLOv8 weights, so the contract is checked with a yolov8n
  built from ultralytics' own architecture file with random weights (and COCO class names), saved as a
  real .pt and loaded through the backend, offline.
"""

import re
import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from bench.models import random_yolov8n as random_yolov8n_file
from spectare.core.errors import ModelError
from spectare.detector.models import Found, ObjectDetector, OpenCvYolo, UltralyticsYolo, load_detector
from spectare.detector.settings import load_detector_settings
from spectare.local.stack import DEMO_SOURCE

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "assets" / "models" / "yolov4-tiny"
IMAGES = ROOT / "assets" / "images"


def asset(path: Path) -> Path:
    """A file `make setup` installs; missing means a broken checkout, never a reason to skip."""
    assert path.exists(), f"{path} is missing: run `make setup`"
    return path


def picture(source: str) -> np.ndarray:
    """`bus.jpg` (a photo in assets/images) or `market-street.mp4#N` (the demo footage's keyframe N, 0-based)."""
    if "#" not in source:
        return cv2.imread(str(asset(IMAGES / source)))
    index = int(source.split("#")[1])
    with av.open(str(asset(DEMO_SOURCE))) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONKEY"
        for n, frame in enumerate(container.decode(stream)):
            if n == index:
                return frame.to_ndarray(format="bgr24")
    raise AssertionError(f"{DEMO_SOURCE} has no keyframe {index}")


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def pixels(found: list[Found], image: np.ndarray) -> list[str]:
    h, w = image.shape[:2]
    return [
        f"{f.label} {f.score:.2f} ({f.box[0] * w:.0f}, {f.box[1] * h:.0f}, {f.box[2] * w:.0f}, {f.box[3] * h:.0f})"
        for f in found
    ]


def check_found(detector: ObjectDetector, found: list[Found], min_score: float) -> None:
    """What every backend promises about one image's list."""
    assert [f.score for f in found] == sorted((f.score for f in found), reverse=True)
    for f in found:
        assert isinstance(f.class_id, int) and isinstance(f.score, float)
        assert f.label == detector.labels[f.class_id]
        assert min_score <= f.score <= 1
        x1, y1, x2, y2 = f.box
        assert all(isinstance(v, float) for v in f.box)
        assert 0 <= x1 <= x2 <= 1 and 0 <= y1 <= y2 <= 1, f.box


# Drawn by hand on the pictures (pixels x1, y1, x2, y2, the whole visible object as COCO boxes it), with the
# lowest score YOLOv4-tiny must give each. It finds all of them at the default min_score 0.5 except Zidane
# (arm outstretched across the frame): stretched from 16:9 to 416x416 he scores only ~0.13.
EXPECTED: dict[str, list[tuple[str, tuple[int, int, int, int], float]]] = {
    "bus.jpg": [  # 810x1080
        ("bus", (10, 230, 805, 740), 0.5),
        ("person", (52, 398, 245, 902), 0.5),  # beige coat
        ("person", (222, 405, 345, 860), 0.5),  # dark coat, sunglasses
        ("person", (668, 400, 810, 878), 0.5),  # cut off by the right edge
        # Not expected: the sliver of a person at the left edge (0, 555, 75, 870).
    ],
    "zidane.jpg": [  # 1280x720
        ("person", (750, 42, 1135, 720), 0.5),  # Ancelotti
        ("person", (122, 203, 1152, 720), 0.1),  # Zidane, pointing
    ],
    "market-street.mp4#1": [  # 540x360, 1906 street footage
        ("car", (465, 128, 540, 197), 0.5),  # an early automobile, cut off by the right edge
    ],
    "market-street.mp4#51": [
        ("bicycle", (435, 205, 540, 300), 0.5),
        ("person", (454, 137, 528, 275), 0.5),  # its rider
    ],
}


@pytest.fixture(scope="module")
def yolo() -> OpenCvYolo:
    return OpenCvYolo(asset(MODEL_DIR), device="cpu")


@pytest.fixture(scope="module")
def pictures() -> dict[str, np.ndarray]:
    return {source: picture(source) for source in EXPECTED}


def test_opencv_yolo_is_coco_yolov4_tiny(yolo: OpenCvYolo) -> None:
    assert (yolo.name, yolo.device, len(yolo.labels)) == ("yolov4-tiny", "cpu", 80)
    assert yolo.labels[:3] == ("person", "bicycle", "car")
    assert yolo.labels[9] == "traffic_light"  # "traffic light" as a subject token
    # Darknet's old names become the COCO names every other model uses ("motorbike" -> "motorcycle").
    assert (yolo.labels[3], yolo.labels[4], yolo.labels[62]) == ("motorcycle", "airplane", "tv")
    assert yolo.detect([], 0.5) == []


@pytest.mark.parametrize("source", EXPECTED)
def test_opencv_yolo_finds_hand_checked_objects(yolo: OpenCvYolo, pictures: dict[str, np.ndarray], source: str) -> None:
    image = pictures[source]
    h, w = image.shape[:2]
    min_score = min(score for _, _, score in EXPECTED[source])
    [found] = yolo.detect([image], min_score)
    check_found(yolo, found, min_score)
    unmatched = list(found)
    for label, (x1, y1, x2, y2), score in EXPECTED[source]:
        want = (x1 / w, y1 / h, x2 / w, y2 / h)
        candidates = [f for f in unmatched if f.label == label and f.score >= score]
        best = max(candidates, key=lambda f: iou(f.box, want), default=None)
        assert best is not None and iou(best.box, want) >= 0.5, (
            f"{source}: no {label} scoring >= {score} at {(x1, y1, x2, y2)}; found {pixels(found, image)}"
        )
        unmatched.remove(best)


def test_opencv_yolo_batch_equals_one_by_one(yolo: OpenCvYolo, pictures: dict[str, np.ndarray]) -> None:
    images = list(pictures.values())  # four sizes: 810x1080, 1280x720, 540x360 twice
    one_by_one = [yolo.detect([image], 0.2)[0] for image in images]
    batch = yolo.detect(images, 0.2)
    assert len(batch) == len(images)
    for single, batched in zip(one_by_one, batch, strict=True):
        assert single, "every picture has objects"
        assert [f.label for f in batched] == [f.label for f in single]
        for a, b in zip(single, batched, strict=True):
            assert abs(a.score - b.score) < 1e-3
            assert np.allclose(a.box, b.box, atol=1e-3), (a, b)


def test_load_detector_builds_the_configured_backend() -> None:
    detector = load_detector(load_detector_settings(model_path=asset(MODEL_DIR), device="cpu", input_size=320))
    assert isinstance(detector, OpenCvYolo)
    assert (detector.name, detector.input_size) == ("yolov4-tiny", 320)
    [found] = detector.detect([picture("bus.jpg")], 0.5)
    assert "person" in {f.label for f in found}


# --- broken model folders: each a real folder with the real files, one of them missing or spoilt ---------


def _link(src: Path, dst: Path) -> None:
    dst.symlink_to(src)


def _missing_folder(d: Path) -> Path:
    return d / "nowhere"


def _no_cfg(d: Path) -> Path:
    _link(MODEL_DIR / "yolov4-tiny.weights", d / "yolov4-tiny.weights")
    return d


def _no_weights(d: Path) -> Path:
    shutil.copy(MODEL_DIR / "yolov4-tiny.cfg", d)
    shutil.copy(MODEL_DIR / "coco.names", d)
    return d / "yolov4-tiny.weights"


def _no_names(d: Path) -> Path:
    shutil.copy(MODEL_DIR / "yolov4-tiny.cfg", d)
    _link(MODEL_DIR / "yolov4-tiny.weights", d / "yolov4-tiny.weights")
    return d / "coco.names"


def _complete(d: Path) -> None:
    shutil.copy(MODEL_DIR / "yolov4-tiny.cfg", d)
    shutil.copy(MODEL_DIR / "coco.names", d)
    _link(MODEL_DIR / "yolov4-tiny.weights", d / "yolov4-tiny.weights")


def _spoil_weights(d: Path, data: bytes) -> Path:
    _complete(d)
    (d / "yolov4-tiny.weights").unlink()
    (d / "yolov4-tiny.weights").write_bytes(data)
    return d / "yolov4-tiny.weights"


def _truncated_weights(d: Path) -> Path:
    weights = (MODEL_DIR / "yolov4-tiny.weights").read_bytes()
    return _spoil_weights(d, weights[: len(weights) // 2])


def _tiny_weights(d: Path) -> Path:
    return _spoil_weights(d, b"\x00" * 10)


def _too_long_weights(d: Path) -> Path:
    return _spoil_weights(d, (MODEL_DIR / "yolov4-tiny.weights").read_bytes() + bytes(4096))


def _garbage_cfg(d: Path) -> Path:
    _complete(d)
    (d / "yolov4-tiny.cfg").write_text("this is not\na darknet cfg\n")
    return d / "yolov4-tiny.cfg"


def _binary_cfg(d: Path) -> Path:
    _complete(d)
    (d / "yolov4-tiny.cfg").write_bytes(bytes(range(256)) * 4)
    return d / "yolov4-tiny.cfg"


def _names_short(d: Path) -> Path:
    _complete(d)
    lines = (MODEL_DIR / "coco.names").read_text().splitlines()
    (d / "coco.names").write_text("\n".join(lines[:-1]) + "\n")
    return d / "coco.names"


def _names_bad_label(d: Path) -> Path:
    _complete(d)
    lines = (MODEL_DIR / "coco.names").read_text().splitlines()
    (d / "coco.names").write_text("\n".join(["person!"] + lines[1:]) + "\n")
    return d / "coco.names"


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_missing_folder, "model folder not found"),
        (_no_cfg, "no Darknet .cfg file"),
        (_no_weights, "weights file not found"),
        (_no_names, "class names file not found"),
        (_truncated_weights, "truncated"),
        (_tiny_weights, "not Darknet weights"),
        (_too_long_weights, "not the weights of this cfg"),
        (_garbage_cfg, "not a usable Darknet cfg"),
        (_binary_cfg, "not a Darknet cfg"),
        (_names_short, "79 class names, but"),
        (_names_bad_label, "person!"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_broken_model_folder_is_one_model_error_naming_the_file(make, says: str, tmp_path: Path) -> None:
    asset(MODEL_DIR)
    folder = tmp_path / "model"
    folder.mkdir()
    bad = make(folder)
    with pytest.raises(ModelError) as error:
        OpenCvYolo(folder if make is not _missing_folder else bad, device="cpu")
    message = str(error.value)
    assert str(bad) in message and says in message, message
    assert "\n" not in message


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:7"])
def test_opencv_cuda_device_without_cuda_is_a_model_error(device: str) -> None:
    if cv2.cuda.getCudaEnabledDeviceCount() > 0:  # an OpenCV built with CUDA, on a GPU machine
        assert OpenCvYolo(asset(MODEL_DIR), device="cuda").device == "opencv-cuda"
        return
    with pytest.raises(ModelError, match=f"device '{device}'.*no CUDA"):
        OpenCvYolo(asset(MODEL_DIR), device=device)


def test_unknown_device_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="device 'tpu': unknown"):
        OpenCvYolo(asset(MODEL_DIR), device="tpu")


# --- ultralytics -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_yolov8n(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """yolov8n with random weights and COCO class names, saved as a real .pt; built offline."""
    names = (asset(MODEL_DIR) / "coco.names").read_text().split("\n")[:80]
    return random_yolov8n_file(tmp_path_factory.mktemp("ultralytics"), names)


@pytest.fixture(scope="module")
def ultralytics_yolo(random_yolov8n: Path) -> UltralyticsYolo:
    return UltralyticsYolo(random_yolov8n, input_size=320, nms_iou=0.45)


def test_ultralytics_yolo_keeps_the_contract(ultralytics_yolo: UltralyticsYolo, yolo: OpenCvYolo, pictures) -> None:
    import torch

    detector = ultralytics_yolo
    coco = yolo.labels  # one label vocabulary whatever the backend
    assert detector.name == "yolov8n-random"
    assert detector.device == ("cuda:0" if torch.cuda.is_available() else "cpu")
    assert detector.labels == coco
    images = list(pictures.values())
    assert detector.detect([], 0.5) == []
    for min_score in (1e-4, 0.01, 0.5):
        found = detector.detect(images, min_score)
        assert len(found) == len(images)
        for per_image in found:
            check_found(detector, per_image, min_score)
    low = detector.detect(images, 1e-4)
    assert all(low), "random weights give boxes at a very low min_score"


def test_load_detector_builds_ultralytics(random_yolov8n: Path) -> None:
    settings = load_detector_settings(backend="ultralytics", model_path=random_yolov8n, device="cpu")
    detector = load_detector(settings)
    assert isinstance(detector, UltralyticsYolo)
    assert (detector.name, detector.device, detector.input_size) == ("yolov8n-random", "cpu", 416)


def _garbage_pt(d: Path, random_pt: Path) -> Path:
    (d / "garbage.pt").write_bytes(b"not a torch checkpoint\n" * 100)
    return d / "garbage.pt"


def _truncated_pt(d: Path, random_pt: Path) -> Path:
    data = random_pt.read_bytes()
    (d / "truncated.pt").write_bytes(data[: len(data) // 2])
    return d / "truncated.pt"


def _garbage_onnx(d: Path, random_pt: Path) -> Path:
    (d / "garbage.onnx").write_bytes(b"\x08\x07" + bytes(1000))
    return d / "garbage.onnx"


def _missing_pt(d: Path, random_pt: Path) -> Path:
    return d / "yolov8n.pt"  # a name ultralytics would otherwise try to download


def _classifier(d: Path, random_pt: Path) -> Path:
    from ultralytics import YOLO

    YOLO("yolov8n-cls.yaml").save(d / "classifier.pt")  # a real model, but it classifies whole images
    return d / "classifier.pt"


def _engine_on_cpu(d: Path, random_pt: Path) -> Path:
    (d / "model.engine").write_bytes(b"x")
    return d / "model.engine"


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (_missing_pt, "model file not found"),
        (_garbage_pt, "cannot load the model"),
        (_truncated_pt, "cannot load the model"),
        (_garbage_onnx, "cannot load the model|needs the Python package 'onnxruntime'"),
        (_classifier, "not a detection model"),
        (_engine_on_cpu, "TensorRT engine needs a CUDA GPU"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else None,
)
def test_broken_ultralytics_model_is_one_model_error_naming_the_file(
    make, says: str, random_yolov8n: Path, tmp_path: Path
) -> None:
    bad = make(tmp_path, random_yolov8n)
    with pytest.raises(ModelError) as error:
        UltralyticsYolo(bad, device="cpu")
    message = str(error.value)
    assert str(bad) in message and re.search(says, message), message
    assert "\n" not in message


def test_ultralytics_cuda_device_without_cuda_is_a_model_error(random_yolov8n: Path) -> None:
    import torch

    if torch.cuda.is_available():
        assert UltralyticsYolo(random_yolov8n, device="cuda").device == "cuda:0"
        return
    with pytest.raises(ModelError, match="device 'cuda'.*no CUDA GPU"):
        UltralyticsYolo(random_yolov8n, device="cuda")
