"""Backup benchmark: ours against the plain tools doing the same work, in the same run.

    .venv/bin/python bench/backup.py            # full run (1 GiB SQLite, ~1 GB PostgreSQL, 2 GB RSS probe)
    .venv/bin/python bench/backup.py --quick    # small sizes, to check the harness

Every measured step runs as its own process; wall time and peak RSS (wait4) are recorded.
Comparisons (goals from the foundation issue):
  1. SQLite 1 GiB: `backups take` to a local region  vs  `sqlite3 .backup` + `zstd -3 -T2`   (≤ 1.0×)
  2. PostgreSQL ~1 GB: `backups take`                vs  `pg_dump -Fc -Z0 | zstd -3 -T2`     (≤ 1.15×)
  3. Replication to SeaweedFS (copy + verify)        vs  bare boto3 upload_file             (≤ 1.2×)
  4. Peak RSS of `backups take` on 100 MB and 2 GB databases                                (≤ 150 MB, flat)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ops_project.demo.database import generate  # noqa: E402
from tests.servers import ACCESS_KEY, SECRET_KEY, start_weed  # noqa: E402

PY = sys.executable
PG_ADMIN = os.environ.get("OPS_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def measure(cmd: list[str] | str, env: dict | None = None, shell: bool = False) -> tuple[float, float]:
    """(seconds, peak RSS in MiB summed over the command's whole process tree), sampled every 10 ms.

    Sampling, not wait4's ru_maxrss: a forked child inherits its parent's high-water mark, which
    would report this harness's own size for every command.
    """
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.01)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"command failed: {cmd}\n{proc.stderr.read().decode()[-2000:]}")
    return seconds, peak / 2**20


def drop_caches_hint() -> None:
    os.sync()


def demo(out: Path, size_mb: int) -> Path:
    path = out / f"demo-{size_mb}.db"
    if not path.exists():
        t = time.perf_counter()
        generate(path, size_mb, seed=1)
        print(f"  generated {path.name}: {path.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - t:.1f}s")
    return path


def config(out: Path, databases: list[dict], regions: list[dict]) -> Path:
    path = out / f"bench-{len(list(out.glob('bench-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({"timezone": "UTC", "databases": databases, "regions": regions,
                                    "backup": {"compression": {"level": 3, "threads": 2}}}))
    return path


def best_of(n: int, fn) -> tuple[float, float]:
    runs = [fn() for _ in range(n)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def bench_sqlite(out: Path, size_mb: int, rounds: int) -> dict:
    db = demo(out, size_mb)
    region = out / "region-sqlite"
    cfg = config(out, [{"name": "booking", "engine": "sqlite", "path": str(db)}],
                 [{"name": "local", "kind": "local", "path": str(region), "create": True}])

    def ours():
        shutil.rmtree(region, ignore_errors=True)
        drop_caches_hint()
        return measure([PY, "-m", "ops_project", "--config", str(cfg), "backups", "take", "--database", "booking",
                        "--quiet"])

    def pair():
        tmp = out / "pair.sqlite"
        tmp.unlink(missing_ok=True)
        drop_caches_hint()
        result = measure(f"sqlite3 {db} '.backup {tmp}' && zstd -3 -T2 -q -f {tmp} -o {out / 'pair.sqlite.zst'}",
                         shell=True)
        tmp.unlink(missing_ok=True)
        return result

    o, p = best_of(rounds, ours), best_of(rounds, pair)
    stored = sum(f.stat().st_size for f in region.rglob("data.*"))
    return {"size_mib": round(db.stat().st_size / 2**20), "ours_s": round(o[0], 2), "ours_rss_mib": round(o[1]),
            "pair_s": round(p[0], 2), "pair_zstd_bytes": (out / "pair.sqlite.zst").stat().st_size,
            "ours_stored_bytes": stored, "ratio": round(o[0] / p[0], 3)}


def bench_phases(out: Path, size_mb: int) -> dict:
    """Where a SQLite backup's time goes: copy, then compression beside the checksum workers."""
    from ops_project.backups.codec import encode
    from ops_project.backups.engines.sqlite import snapshot

    class Null:
        def write(self, data) -> int:
            return len(data)

    db = demo(out, size_mb)
    t = time.perf_counter()
    with snapshot(db, scratch_dir=out) as snap:
        copied = time.perf_counter() - t
        encode(snap.stream, Null(), level=3, threads=2)
        encoded = time.perf_counter() - t
        rows = sum(s.rows for s in snap.stats().tables.values())
        checked = time.perf_counter() - t
    tmp = out / "phase-pair.sqlite"
    plain_copy = measure(f"sqlite3 {db} '.backup {tmp}'", shell=True)[0]
    plain_zstd = measure(f"zstd -3 -T2 -q -f {tmp} -o {tmp}.zst", shell=True)[0]
    tmp.unlink()
    Path(f"{tmp}.zst").unlink()
    return {"rows": rows, "copy_done_s": round(copied, 2), "compressed_done_s": round(encoded, 2),
            "checksums_done_s": round(checked, 2), "plain_sqlite3_backup_s": round(plain_copy, 2),
            "plain_zstd_s": round(plain_zstd, 2)}


def bench_rss(out: Path, size_mb: int) -> dict:
    db = demo(out, size_mb)
    region = out / f"region-rss-{size_mb}"
    cfg = config(out, [{"name": "booking", "engine": "sqlite", "path": str(db)}],
                 [{"name": "local", "kind": "local", "path": str(region), "create": True}])
    shutil.rmtree(region, ignore_errors=True)
    s, rss = measure([PY, "-m", "ops_project", "--config", str(cfg), "backups", "take", "--database", "booking",
                      "--quiet"])
    shutil.rmtree(region, ignore_errors=True)
    return {"size_mib": round(db.stat().st_size / 2**20), "seconds": round(s, 2), "peak_rss_mib": round(rss)}


def bench_postgres(out: Path, size_mb: int, rounds: int) -> dict:
    name = f"ops_bench_backup_{size_mb}"
    url = PG_ADMIN.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(PG_ADMIN, autocommit=True) as con:
        exists = con.execute("SELECT 1 FROM pg_database WHERE datname=%s", (name,)).fetchone()
        if not exists:
            con.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(url, autocommit=True) as con:
        if not con.execute("SELECT to_regclass('appointments')").fetchone()[0]:
            t = time.perf_counter()
            rows = int(size_mb * 1024 * 1024 / 190)
            con.execute("""
                CREATE TABLE tenants (id int PRIMARY KEY, name text);
                INSERT INTO tenants SELECT g, 'tenant ' || g FROM generate_series(1, 200) g;
                CREATE TABLE appointments (id bigint PRIMARY KEY, tenant_id int REFERENCES tenants(id),
                    customer_id int, starts_at timestamptz, status text, notes text)""")
            con.execute(f"""
                INSERT INTO appointments
                SELECT g, 1 + g % 200, g % 100000, timestamptz '2024-01-01' + g * interval '7 minutes',
                       (ARRAY['booked','confirmed','completed','cancelled'])[1 + g % 4],
                       md5(g::text) || ' ' || repeat(substr('please call before arriving, first visit, ', 1 + g % 20),
                                                     1 + g % 3)
                FROM generate_series(1, {rows}) g""")
            con.execute("CREATE INDEX ON appointments (tenant_id, starts_at)")
            con.execute("VACUUM ANALYZE")
            print(f"  generated PostgreSQL {name} in {time.perf_counter() - t:.1f}s")
        size = con.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    region = out / "region-pg"
    cfg = config(out, [{"name": "core", "engine": "postgres", "url_env": "OPS_BENCH_PG_URL"}],
                 [{"name": "local", "kind": "local", "path": str(region), "create": True}])
    env = dict(os.environ, OPS_BENCH_PG_URL=url)

    def ours():
        shutil.rmtree(region, ignore_errors=True)
        return measure([PY, "-m", "ops_project", "--config", str(cfg), "backups", "take", "--database", "core",
                        "--quiet"], env=env)

    def pair():
        return measure(f"pg_dump -Fc -Z0 '{url}' | zstd -3 -T2 -q > {out / 'pair.pgdump.zst'}", shell=True)

    def dump_alone():
        return measure(f"pg_dump -Fc -Z0 '{url}' > /dev/null", shell=True)

    def checksums_alone() -> tuple[float, float]:  # the manifest's table stats, as a backup computes them
        from ops_project.backups.engines.postgres import table_stats

        t = time.perf_counter()
        with psycopg.connect(url) as con, con.transaction():
            con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            table_stats(con)
        return time.perf_counter() - t, 0.0

    o, p = best_of(rounds, ours), best_of(rounds, pair)
    d, c = best_of(rounds, dump_alone), best_of(rounds, checksums_alone)
    return {"database_mib": round(size / 2**20), "ours_s": round(o[0], 2), "ours_rss_mib": round(o[1]),
            "pair_s": round(p[0], 2), "ratio": round(o[0] / p[0], 3),
            "phases": {"pg_dump_alone_s": round(d[0], 2), "table_checksums_alone_s": round(c[0], 2)}}


REPLICATE = """
import json, sys, time
t0 = time.perf_counter()
from ops_project.storage.config import RegionConfig
from ops_project.backups.replicate import replicate
from ops_project.storage import S3Credentials, open_store
src = open_store(RegionConfig(name="src", kind="local", path=sys.argv[1], create=True))
dst = open_store(RegionConfig(name="dst", kind="s3", bucket=sys.argv[3]),
                 S3Credentials(sys.argv[2], sys.argv[4], sys.argv[5]))
ready = time.perf_counter()
result = replicate(src, dst, "booking", sys.argv[6])
done = time.perf_counter()
with open(sys.argv[7], "w") as fh:
    json.dump({"imports_and_clients_s": ready - t0, "copy_s": result.copy_seconds,
               "verify_reread_s": result.verify_seconds,
               "manifest_and_rest_s": done - ready - result.copy_seconds - result.verify_seconds}, fh)
"""

BARE = """
import json, sys, time
t0 = time.perf_counter()
import boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[3], aws_secret_access_key=sys.argv[4],
                  region_name="us-east-1")
ready = time.perf_counter()
s3.upload_file(sys.argv[5], sys.argv[2], "bare/" + sys.argv[5].rsplit("/", 1)[-1])
with open(sys.argv[6], "w") as fh:
    json.dump({"imports_and_clients_s": ready - t0, "upload_s": time.perf_counter() - ready}, fh)
"""


def bench_replication(out: Path, size_mb: int, rounds: int) -> dict:
    region = out / "region-sqlite"
    if not any(region.rglob("manifest.json")):
        bench_sqlite(out, size_mb, 1)
    manifest_path = next(region.rglob("manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    data = manifest_path.parent / manifest["data_object"]
    weed = start_weed(Path(tempfile.mkdtemp(prefix="bench-weed-", dir=out)))
    try:
        results_ours, results_bare, phases_ours, phases_bare = [], [], [], []
        timing = out / "replication-phases.json"
        for i in range(rounds):
            bucket = weed.make_bucket(f"bench-{i}-{int(time.time())}")
            results_ours.append(measure([PY, "-c", REPLICATE, str(region), weed.endpoint, bucket, ACCESS_KEY,
                                         SECRET_KEY, manifest["backup_id"], str(timing)]))
            phases_ours.append(json.loads(timing.read_text()))
            results_bare.append(measure([PY, "-c", BARE, weed.endpoint, bucket, ACCESS_KEY, SECRET_KEY, str(data),
                                         str(timing)]))
            phases_bare.append(json.loads(timing.read_text()))
        best_o = min(range(rounds), key=lambda k: results_ours[k][0])
        best_b = min(range(rounds), key=lambda k: results_bare[k][0])
        o = results_ours[best_o][0], max(r[1] for r in results_ours)
        b = results_bare[best_b][0], max(r[1] for r in results_bare)
    finally:
        weed.stop()
        shutil.rmtree(weed.data_dir, ignore_errors=True)

    def rounded(phases: dict, total: float) -> dict:
        # the interpreter's own start and exit: what the process took beyond what it timed itself
        return {**{k: round(v, 2) for k, v in phases.items()},
                "interpreter_start_and_exit_s": round(total - sum(phases.values()), 2)}

    return {"object_mib": round(data.stat().st_size / 2**20, 1), "ours_s": round(o[0], 2),
            "ours_rss_mib": round(o[1]), "bare_boto3_s": round(b[0], 2), "bare_rss_mib": round(b[1]),
            "ratio": round(o[0] / b[0], 3),
            "phases": {"ours": rounded(phases_ours[best_o], o[0]), "bare_boto3": rounded(phases_bare[best_b], b[0])}}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(REPO / "bench" / "out"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=["sqlite", "postgres", "replication", "rss", "phases"], action="append")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = {"sqlite": 64, "pg": 50, "rss": (20, 100)} if args.quick else {"sqlite": 1024, "pg": 1000,
                                                                             "rss": (100, 2048)}
    only = set(args.only or ["sqlite", "postgres", "replication", "rss", "phases"])
    results: dict = {"machine": f"{os.cpu_count()} cores", "quick": args.quick}
    steps = {
        "sqlite": lambda: bench_sqlite(out, sizes["sqlite"], args.rounds),
        "replication": lambda: bench_replication(out, sizes["sqlite"], args.rounds),
        "postgres": lambda: bench_postgres(out, sizes["pg"], args.rounds),
        "rss": lambda: [bench_rss(out, s) for s in sizes["rss"]],
        "phases": lambda: bench_phases(out, sizes["sqlite"]),
    }
    for name, step in steps.items():
        if name in only:
            print(f"{name} ...", flush=True)
            results[name] = step()
            print("  ", results[name], flush=True)
    (out / ("results-" + "-".join(sorted(only)) + ".json")).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
