"""Slow-query analysis against pgBadger, in one run on the same PostgreSQL stderr log.

The log is generated: ``--size-mb`` of ``log_min_duration_statement = 0`` lines with the prefix
``%m [%p] %q%u@%d `` from 40 query shapes (literals and IN-list lengths vary; a tenth are multi-line), plus
connection and checkpoint lines. Both tools read it single-threaded: ours (``queries analyze --json``) and
``pgbadger -j 1 -x json``. Reported: seconds, MB/s, peak RSS (process tree, sampled every 10 ms), and whether
the top-10 shapes by total time have the same call counts and total times in both.

Usage: ``.venv/bin/python bench/queries.py --size-mb 300`` (needs Debian's ``pgbadger``).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backup import measure  # noqa: E402 - the benchmarks' one process-tree RSS sampler

PREFIX = "%m [%p] %q%u@%d "
TABLES = ["appointments", "customers", "staff", "services", "payments", "audit_log", "tenants", "slots"]


def _ids(r: random.Random) -> str:
    return ", ".join(str(r.randint(1, 10**6)) for _ in range(r.randint(1, 9)))


def _shapes(rng: random.Random) -> list:
    shapes = []
    for i in range(40):
        table = TABLES[i % len(TABLES)]
        kind = i % 4
        if kind == 0:
            shapes.append(lambda r, t=table, i=i: f"SELECT id, c{i} FROM {t} WHERE tenant_id = {r.randint(1, 999)}")
        elif kind == 1:
            shapes.append(lambda r, t=table, i=i: f"SELECT count(*) FROM {t} WHERE id IN ({_ids(r)}) "
                                                  f"AND k{i} = 'x{r.randint(1, 99)}'")
        elif kind == 2:
            shapes.append(lambda r, t=table, i=i: f"UPDATE {t} SET v{i} = 'v-{r.randint(1, 10**6)}' WHERE id = "
                                                  f"{r.randint(1, 10**6)}")
        else:
            shapes.append(lambda r, t=table, i=i: f"SELECT a.id, a.s{i}\n\t  FROM {t} a\n\t WHERE a.starts_at > "
                                                  f"'2026-11-{r.randint(10, 28)}' ORDER BY a.id "
                                                  f"LIMIT {r.randint(5, 50)}")
    return shapes


def generate(path: Path, size_mb: int, seed: int = 7) -> int:
    rng = random.Random(seed)
    shapes = _shapes(rng)
    weights = [1 / (i + 1) for i in range(len(shapes))]  # a few hot shapes, a long tail
    at = datetime(2026, 11, 22, 0, 0, 0)
    target, written, lines = size_mb << 20, 0, 0
    with open(path, "w") as fh:
        while written < target:
            at += timedelta(milliseconds=rng.randint(1, 40))
            pid = rng.randint(1000, 1063)
            ts = at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d} UTC"
            roll = rng.random()
            if roll < 0.002:
                line = f"{ts} [{pid}] LOG:  checkpoint starting: time\n"
            elif roll < 0.004:
                line = f"{ts} [{pid}] [unknown]@[unknown] LOG:  connection received: host=127.0.0.1 port=5432\n"
            else:
                shape = rng.choices(shapes, weights)[0]
                ms = rng.lognormvariate(0, 1)
                line = f"{ts} [{pid}] app@booking LOG:  duration: {ms:.3f} ms  statement: {shape(rng)}\n"
            fh.write(line)
            written += len(line)
            lines += 1
    return lines


def ours(log: Path, out: Path) -> tuple[float, float, list]:
    seconds, rss = measure([sys.executable, "-m", "ops_project", "queries", "analyze", str(log), "--log-line-prefix",
                            PREFIX, "--top", "10", "--json", str(out)])
    report = json.loads(out.read_text())
    return seconds, rss, [(q["calls"], round(q["total_ms"], 1)) for q in report["queries"][:10]]


def pgbadger(log: Path, out: Path) -> tuple[float, float, list]:
    exe = shutil.which("pgbadger")
    if not exe:
        raise SystemExit("pgbadger is missing: apt-get install pgbadger")
    seconds, rss = measure([exe, "-j", "1", "-x", "json", "-o", str(out), "--prefix", PREFIX, "-q", str(log)])
    doc = json.loads(out.read_text())
    rows = []
    for per_database in (doc.get("normalyzed_info") or {}).values():  # {database: {normalised query: stats}}
        for stats in per_database.values():
            rows.append((int(stats.get("count", 0)), round(float(stats.get("duration", 0.0)), 1)))
    rows.sort(key=lambda r: -r[1])
    return seconds, rss, rows[:10]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=300, help="size of the generated stderr log")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        log = tmp / "postgresql.log"
        lines = generate(log, args.size_mb)
        size = log.stat().st_size / 1e6
        print(f"log: {size:.0f} MB, {lines} lines")
        results = {"ours": ours(log, tmp / "ours.json"), "pgbadger -j 1": pgbadger(log, tmp / "badger.json")}
    for name, (seconds, rss, _top) in results.items():
        print(f"{name:<14} {seconds:8.1f} s  {size / seconds:7.1f} MB/s  peak RSS {rss:6.0f} MiB")
    a, b = results["ours"][2], results["pgbadger -j 1"][2]
    same_calls = [x[0] for x in a] == [y[0] for y in b]
    same_totals = all(abs(x[1] - y[1]) <= max(0.05, 1e-6 * y[1]) for x, y in zip(a, b, strict=False))
    print(f"top 10 by total time: same call counts {same_calls}, same totals {same_totals}")
    print(f"  ours     {a}\n  pgbadger {b}")
    print(f"throughput ratio: {results['pgbadger -j 1'][0] / results['ours'][0]:.2f}x pgbadger's")


if __name__ == "__main__":
    main()
