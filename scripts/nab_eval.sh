#!/usr/bin/env bash
# Score ember's NAB detector on the NAB dev files with NAB's scoring rules (all 3 profiles).
#   scripts/nab_eval.sh [extra score.py options, e.g. --quiet --json dev.json]
# Runs from the repository root; needs ../shared/eval/nab and ../shared/data/nab-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
SHARED=${EMBER_SHARED:-../shared}
exec "$PY" "$SHARED/eval/nab/score.py" \
    --data "$SHARED/data/nab-dev/data" \
    --labels "$SHARED/data/nab-dev/labels/combined_windows.json" \
    --run "$PY -m ember_models.nab" --jobs "${NAB_JOBS:-2}" "$@"
