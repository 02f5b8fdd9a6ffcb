#!/usr/bin/env bash
# Quickstart 2: install, then run the whole test suite (CPU, tiny models, no downloads).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
python -m pytest "$@"
