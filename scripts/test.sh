#!/usr/bin/env bash
# Quickstart 2: install, then run the whole test suite (CPU, tiny models, no downloads).
# Two pytest-xdist workers (one a core on the 2-core machines we test on; ANYFRAME_TEST_WORKERS=N for another count,
# 0 for none), each test file on one worker (module fixtures built once), one torch thread each.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. .venv/bin/activate
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
workers="${ANYFRAME_TEST_WORKERS:-2}"
if [ "$workers" = "0" ]; then
  exec python -m pytest "$@"
fi
exec python -m pytest -n "$workers" --dist loadfile "$@"
