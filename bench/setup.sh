#!/usr/bin/env bash
# Creates .venv-bench: the project plus the parsers we compare against (pyVoIP 1.6.8 and
# sipmessage). They live only here, never in the project's dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv-bench/bin/python ]; then
    "$PYTHON" -m venv .venv-bench
fi
.venv-bench/bin/pip install --quiet --upgrade pip
.venv-bench/bin/pip install --quiet "pyVoIP==1.6.8" "sipmessage==0.7.1" "hypothesis>=6.100"
.venv-bench/bin/pip install --quiet --no-deps -e .
echo "bench venv ready: .venv-bench/bin/python bench/parse.py"
