"""Restore benchmark: restore + full verification against the plain tools doing the engine check.

    .venv/bin/python bench/restore.py            # 1 GiB demo database (generated once under bench/out/)
    .venv/bin/python bench/restore.py --quick    # 64 MiB, to check the harness

Ours: `python -m ops_project backups verify` from a local region (download, zstd -d, sha256 of
both sides, PRAGMA integrity_check + foreign_key_check, schema fingerprint, row counts and
content checksums against the manifest, booking invariants).
Plain: `zstd -d` to a file, then `sqlite3 FILE 'PRAGMA integrity_check'`.  Goal: ours ≤ 1.3×.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.backup import PY, config, demo, measure  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "bench" / "out"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    db = demo(out, 64 if args.quick else 1024)
    region = out / "region-restore"
    shutil.rmtree(region, ignore_errors=True)
    cfg = config(out, [{"name": "booking", "engine": "sqlite", "path": str(db)}],
                 [{"name": "local", "kind": "local", "path": str(region), "create": True}])
    subprocess.run([PY, "-m", "ops_project", "--config", str(cfg), "backups", "take", "--database", "booking",
                    "--quiet"], check=True, capture_output=True)
    stored = next(region.rglob("data.sqlite.zst"))
    restored = out / "plain-restored.sqlite"

    def ours():
        return measure([PY, "-m", "ops_project", "--config", str(cfg), "backups", "verify", "--database", "booking",
                        "--no-record"])

    def plain():
        restored.unlink(missing_ok=True)
        result = measure(f"zstd -d -q -f {stored} -o {restored} && sqlite3 {restored} 'PRAGMA integrity_check' "
                         f"| grep -qx ok", shell=True)
        restored.unlink(missing_ok=True)
        return result

    o = [ours() for _ in range(args.rounds)]
    p = [plain() for _ in range(args.rounds)]
    t = time.perf_counter()
    phases = subprocess.run([PY, "-m", "ops_project", "--config", str(cfg), "backups", "verify", "--database",
                             "booking", "--no-record", "--json"], check=True, capture_output=True, text=True)
    timings = json.loads(phases.stdout)["timings"]
    results = {"size_mib": round(db.stat().st_size / 2**20), "stored_mib": round(stored.stat().st_size / 2**20, 1),
               "ours_s": round(min(r[0] for r in o), 2), "ours_rss_mib": round(max(r[1] for r in o)),
               "plain_s": round(min(r[0] for r in p), 2),
               "ratio": round(min(r[0] for r in o) / min(r[0] for r in p), 3),
               "phases_of_one_run_s": {k: round(v, 2) for k, v in timings.items()},
               "phase_run_wall_s": round(time.perf_counter() - t, 2)}
    (out / "results-restore.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
