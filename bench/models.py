"""Model-only timing of each detection backend: milliseconds per frame at batch 1 and batch 4 on real frames.

Part of `python -m bench detection`; also runnable alone on a GPU machine without the rest of the stack:

    python -m bench.models --images DIR [--json OUT]      # DIR holds JPEG frames

Backends: OpenCV DNN with COCO YOLOv4-tiny (when its files are installed), and ultralytics YOLOv8n
(when the package is) built from its yaml: random weights, the same arithmetic as the trained model, so
the same speed; on CPU, and on CUDA (half precision) when torch sees a GPU.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from spectare.core.errors import ModelError
from spectare.detector.models import OpenCvYolo, UltralyticsYolo, ultralytics_offline
from spectare.detector.settings import DEFAULT_MODEL_DIR

INPUT_SIZE = 416
BATCHES = (1, 4)


def time_backend(detector, images: list[np.ndarray], frames: int, batch: int) -> float:
    """Milliseconds per frame over `frames` frames in batches of `batch` (after one warm-up batch)."""
    batches = [[images[(i * batch + j) % len(images)] for j in range(batch)] for i in range(max(1, frames // batch))]
    detector.detect(batches[0], 0.25)
    began = time.perf_counter()
    for chunk in batches:
        detector.detect(chunk, 0.25)
    return (time.perf_counter() - began) * 1000 / (len(batches) * batch)


def random_yolov8n(folder: Path, class_names: list[str] | None = None) -> Path:
    """`folder/yolov8n-random.pt`: YOLOv8n with random weights (seeded) and the given class names (default: the
    80 COCO names of the installed Darknet model, else ultralytics' numbers), built offline from the yaml inside
    the ultralytics package; nothing is downloaded."""
    ultralytics_offline(folder / "config")
    import torch
    from ultralytics import YOLO

    names_file = DEFAULT_MODEL_DIR / "coco.names"
    if class_names is None and names_file.is_file():
        class_names = [line for line in names_file.read_text().splitlines() if line.strip()]
    torch.manual_seed(0)
    model = YOLO("yolov8n.yaml")
    if class_names:
        model.model.names = dict(enumerate(class_names))
    path = folder / "yolov8n-random.pt"
    model.save(str(path))
    return path


def measure(images: list[np.ndarray], frames: int, batches: tuple[int, ...] = BATCHES,
            class_names: list[str] | None = None) -> list[dict]:
    rows = []
    candidates = []
    if DEFAULT_MODEL_DIR.is_dir():
        candidates.append(("opencv", "yolov4-tiny", lambda device: OpenCvYolo(DEFAULT_MODEL_DIR, input_size=INPUT_SIZE,
                                                                            device=device), ["auto"]))
    try:
        import torch

        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        model_file = random_yolov8n(Path(tempfile.mkdtemp(prefix="spectare-yolo-")), class_names)
        candidates.append(("ultralytics", "yolov8n", lambda device: UltralyticsYolo(
            model_file, input_size=INPUT_SIZE, device=device), devices))
    except ImportError:
        print("ultralytics/torch not installed: its backend is left out")
    for backend, model, build, devices in candidates:
        for device in devices:
            try:
                detector = build(device)
            except ModelError as exc:
                print(f"{backend} on {device}: {exc}")
                continue
            row = {"backend": backend, "model": model, "device": detector.device, "input": INPUT_SIZE}
            for batch in batches:
                row[f"ms_per_frame_batch{batch}"] = round(time_backend(detector, images, frames, batch), 1)
            rows.append(row)
            print_table(rows[-1:], header=len(rows) == 1)
    return rows


def print_table(rows: list[dict], header: bool = True) -> None:
    batches = [k for k in rows[0] if k.startswith("ms_per_frame_batch")] if rows else []
    if header:
        print(f"{'backend':>12} {'model':>12} {'device':>10} "
              + " ".join(f"{'batch ' + k.removeprefix('ms_per_frame_batch'):>9}" for k in batches) + "  (ms per frame)")
    for r in rows:
        print(f"{r['backend']:>12} {r['model']:>12} {r['device']:>10} " + " ".join(f"{r[k]!s:>9}" for k in batches))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.models", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True, help="folder of JPEG frames")
    parser.add_argument("--frames", type=int, default=40, help="frames timed per backend and batch size")
    parser.add_argument("--batches", default="1,4", help="batch sizes (default 1,4)")
    parser.add_argument("--class-names", type=Path, help="coco.names for the random YOLOv8n's classes")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    images = [cv2.imread(str(p)) for p in sorted(args.images.glob("*.jpg"))]
    if not images:
        parser.error(f"no .jpg frames in {args.images}")
    names = args.class_names.read_text().splitlines() if args.class_names else None
    rows = measure(images, args.frames, tuple(int(b) for b in args.batches.split(",")), names)
    if args.json:
        args.json.write_text(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
