#!/usr/bin/env bash
# The GPU check of the detector's ultralytics backend, on a CUDA machine that has torch but no network and
# no Spectare install: installs the carried wheels (ultralytics, pydantic, ...) into /tmp, lays out the
# spectare package by links, and runs bench/gpu_check.py.
#   bench/gpu-check.sh WHEELS_DIR FRAMES_DIR COCO_NAMES OUT_DIR
set -euo pipefail
wheels=$(realpath "$1") frames=$(realpath "$2") names=$(realpath "$3") out=$(realpath "$4")
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/spectare-site "$wheels"/*.whl
pkg=/tmp/spectare-pkg/spectare
rm -rf /tmp/spectare-pkg && mkdir -p "$pkg"
cp spectare/__init__.py "$pkg/"
for d in cli core local; do ln -s "$PWD/spectare/$d" "$pkg/$d"; done
ln -s "$PWD/schemas" "$pkg/schemas"
ln -s "$PWD/services/detector" "$pkg/detector"
ln -s "$PWD/bench" /tmp/spectare-pkg/bench
export PYTHONPATH="/tmp/spectare-pkg:/tmp/spectare-site" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
cd /tmp/spectare-pkg  # not the checkout: its spectare/ folder lacks the service packages
python3 -m bench.gpu_check "$frames" "$names" "$out"
