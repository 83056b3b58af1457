#!/usr/bin/env bash
# Real photos for the detection tests, from a registry: bus.jpg (a bus and people on a street) and
# zidane.jpg (two people), shipped in the PyPI wheel ultralytics==8.4.190 (AGPL-3.0). Used as test
# data only: the wheel is downloaded, never installed, and only the two images are taken from it.
# Output: $1/bus.jpg, $1/zidane.jpg (bus.jpg written last).
set -euo pipefail
out_dir=${1:?usage: fetch-test-images.sh OUT_DIR}
pip=${PIP:-.venv/bin/pip}
python=${PYTHON:-.venv/bin/python}
wheel=ultralytics-8.4.190-py3-none-any.whl
sha=bd309728efa168af64d39040136828edd2dbcb4aeceb4510bdff4f3ca0ea01b8
cache="$out_dir/cache"
mkdir -p "$cache"
if ! echo "$sha  $cache/$wheel" | sha256sum -c --status 2>/dev/null; then
  "$pip" download -q --no-deps --only-binary :all: ultralytics==8.4.190 -d "$cache"
  echo "$sha  $cache/$wheel" | sha256sum -c --quiet
fi
"$python" - "$cache/$wheel" "$out_dir" <<'PY'
import os, shutil, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    for name in ("zidane.jpg", "bus.jpg"):
        tmp = os.path.join(dest, name + ".tmp")
        with zf.open(f"ultralytics/assets/{name}") as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
        os.replace(tmp, os.path.join(dest, name))
PY
echo "test images ready: $out_dir/"
