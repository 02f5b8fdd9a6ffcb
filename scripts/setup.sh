#!/usr/bin/env bash
# Install anyframe into ./.venv (created if absent): the CPU build of torch first, pinned, so that
# nothing later pulls a CUDA torch; then the project with its dev extras and its web extra (gradio, for
# `anyframe serve`). Safe to re-run: it reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.anyframe-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
  python -m pip install --quiet --disable-pip-version-check -e ".[dev,web]"
  touch "$stamp"
fi
