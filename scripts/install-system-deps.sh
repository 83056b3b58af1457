#!/usr/bin/env bash
# System packages the tests and the demo need: ffmpeg (test clips, benchmarks), GStreamer's RTSP
# server for the simulated cameras (run by the system python3, which has `gi`), Debian's headless
# Chromium, which Playwright drives in the browser tests (`playwright install` would download one), and
# npm for web/ (Debian's, unless the machine already has Node.js with npm).
# Installs them with apt-get when run as root; otherwise says exactly what to install.
set -euo pipefail

PACKAGES=(ffmpeg python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
          gstreamer1.0-plugins-good gstreamer1.0-plugins-bad chromium-headless-shell)
CHROMIUM=/usr/bin/chromium-headless-shell
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

have_all() {
  command -v ffmpeg >/dev/null 2>&1 && [ -x "$CHROMIUM" ] && command -v npm >/dev/null 2>&1 &&
    /usr/bin/python3 - <<'PY' >/dev/null 2>&1
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [e for e in ("h264parse", "rtph264pay", "appsrc", "appsink", "qtdemux", "matroskademux")
           if Gst.ElementFactory.find(e) is None]
raise SystemExit(1 if missing else 0)
PY
}

if have_all; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${PACKAGES[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
  have_all || { echo "error: system packages installed but GStreamer RTSP / ffmpeg / Chromium / npm still missing" >&2; exit 1; }
else
  echo "error: missing system packages. Install them, then run make setup again:" >&2
  echo "  sudo apt-get install --no-install-recommends ${PACKAGES[*]}" >&2
  exit 1
fi
