"""GPU check of the ultralytics backend, for a CUDA machine (no network needed): the adapter's contract on
the GPU (device chosen automatically, half precision, batches of real frames), then model-only timings on
CPU and CUDA. Run by bench/gpu-check.sh; writes JSON to the folder given."""

import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch

from spectare.detector.models import load_detector
from spectare.detector.settings import DetectorSettings

from .models import measure, random_yolov8n


def main(frames_dir: Path, names_file: Path, out: Path) -> None:
    images = [cv2.imread(str(p)) for p in sorted(frames_dir.glob("*.jpg"))]
    names = names_file.read_text().splitlines()[:80]
    print(f"torch {torch.__version__}, CUDA {torch.cuda.is_available()}: "
          f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-'}; {len(images)} frames", flush=True)
    model_file = random_yolov8n(Path(tempfile.mkdtemp(prefix="spectare-gpu-")), names)
    began = time.perf_counter()
    detector = load_detector(DetectorSettings(backend="ultralytics", model_path=model_file, device="auto",
                                              input_size=640))
    load_s = time.perf_counter() - began
    found = detector.detect(images, 1e-4)
    contract = {
        "device": detector.device,
        "load_seconds": round(load_s, 2),
        "per_image_lists": len(found) == len(images),
        "boxes_in_unit_square": all(0 <= v <= 1 for per in found for f in per for v in f.box),
        "labels_match_class_ids": all(f.label == detector.labels[f.class_id] for per in found for f in per),
        "scores_at_least_min": all(f.score >= 1e-4 for per in found for f in per),
        "boxes_found_at_low_min_score": all(len(per) > 0 for per in found),
        "first_labels": detector.labels[:4],
    }
    print("contract on GPU:", json.dumps(contract), flush=True)
    rows = measure(images, 64, (1, 4, 16), names)
    (out / "gpu-check.json").write_text(json.dumps({"contract": contract, "models": rows,
                                                    "gpu": torch.cuda.get_device_name(0)
                                                    if torch.cuda.is_available() else None}, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
