#!/usr/bin/env bash
# Everything MaskWatch needs on a fresh machine: ffmpeg and chromium from Debian, a venv with
# the project.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

# libGL and GLib: opencv-python (pulled by the ByteTrack package, trackers) loads them.
if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null \
    || ! ldconfig -p | grep -q "libGL.so.1" || ! ldconfig -p | grep -q "libglib-2.0.so.0"; then
    echo "setup: installing ffmpeg, libGL and GLib (apt-get)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg libgl1 libglib2.0-0 >/dev/null
fi

# Debian's chromium: the dashboard's browser test drives it with Playwright (pinned in the dev
# extra), since `playwright install` downloads its own browsers and run time has no network.
if ! command -v chromium >/dev/null; then
    echo "setup: installing chromium (apt-get)"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
echo "setup: installing maskwatch and its pinned dependencies into $VENV (torch takes ~2 min)"
"$VENV/bin/python" -m pip install -q -e ".[service,dev,ml]"
"$VENV/bin/python" -c "import torch, facenet_pytorch, sqlalchemy, trackers; print('setup: ok, torch', torch.__version__)"
touch "$VENV/.installed"
