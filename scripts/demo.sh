#!/usr/bin/env bash
# README command 1: install, then run the main job (backup_job) on the embedded default and
# print where its backups are. Runs are kept in .ops/dagster_home for the UI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.ops/dagster_home}
mkdir -p "$DAGSTER_HOME"
# the instance settings of the embedded default (run tags, one backup per database at a time), kept if already there
[ -f "$DAGSTER_HOME/dagster.yaml" ] || cp deploy/dagster.local.yaml "$DAGSTER_HOME/dagster.yaml"
.venv/bin/python scripts/run_backup_job.py
echo
.venv/bin/python -m ops_project backups list
# the slow-query report of yesterday, over a day of demo API traffic (its query log, D1's shape)
echo
.venv/bin/python -m ops_project demo-traffic --day yesterday
.venv/bin/python -m ops_project queries report --database booking --day yesterday
