#!/usr/bin/env bash
# README command 2: install, then run the whole test suite against real servers
# (PostgreSQL and SeaweedFS on 127.0.0.1). Fails, never skips, when one is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
need=()
for tool in zstd age age-keygen sqlite3 pg_dump pg_restore psql chromium redis-server redis-cli nginx pgbackrest openssl; do
  command -v "$tool" >/dev/null || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing missing tools: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq zstd age sqlite3 postgresql-client chromium redis-server nginx pgbackrest openssl >/dev/null
  else
    echo "FATAL: the tests need these command-line tools: ${need[*]} (apt-get install zstd age sqlite3 postgresql-client chromium redis-server nginx pgbackrest openssl)" >&2
    exit 1
  fi
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
