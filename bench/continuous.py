"""Continuous protection (issue 15): the RPO Litestream achieves under a steady write load, what it costs in PUTs
and bytes per hour, and how long a restore to a moment of a 1 GiB SQLite database takes.

1. RPO: a writer commits a booking row every 100 ms for ``--seconds`` (default 120) into a demo database that
   Litestream replicates, with this project's defaults (``continuous: {}``), into a local region and a SeaweedFS
   region. A commit's lag is the time from its commit to the arrival of the first WAL segment stored after it
   (a file's mtime locally; ``LastModified`` in S3, whole seconds, so that column is coarse by up to 1 s).
   Goal: under 1 minute.
2. Cost: PUTs (objects written) and bytes written per hour per database, in each region, during that load.
3. Restore to a moment of a 1 GiB database: ``backups restore --at`` (ours: Litestream plus the integrity
   check) against ``litestream restore -timestamp`` alone, from the local region. Goal: under 2 minutes.
4. PostgreSQL (``--only postgres``): the same load into a cluster of the benchmark's own whose server archives
   its WAL through pgBackRest with this project's defaults (``archive_timeout`` 30 s) into a local region and
   a SeaweedFS region over TLS. A commit's lag is the time to the arrival of the first WAL segment stored after
   it (segments are archived in order, so that is the segment holding it). Also PUTs and bytes per hour, and a
   restore of the cluster to a moment (``backups restore --at``) against ``pgbackrest restore`` alone.

Usage: ``.venv/bin/python bench/continuous.py [--seconds 120] [--size-mb 1024] [--only rpo|restore|postgres]``
(results in bench/out/continuous.json).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ops_project.clients import Clients  # noqa: E402
from ops_project.config import load_config  # noqa: E402
from ops_project.continuous.litestream import binary, environment, replica_prefix, write_config  # noqa: E402
from ops_project.demo.database import generate  # noqa: E402
from tests.servers import ACCESS_KEY, SECRET_KEY, start_weed  # noqa: E402

PY = sys.executable


def write_cfg(root: Path, db: Path, endpoint_env: str, bucket: str) -> Path:
    doc = {"timezone": "UTC", "databases": [{"name": "booking", "engine": "sqlite", "path": str(db)}],
           "regions": [{"name": "local", "kind": "local", "path": str(root / "region-local"), "create": True},
                       {"name": "seaweed", "kind": "s3", "bucket": bucket, "endpoint_url_env": endpoint_env,
                        "access_key_id_env": "BENCH_KEY", "secret_access_key_env": "BENCH_SECRET"}],
           "continuous": {}}
    path = root / "ops.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def start(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([PY, "-m", "ops_project", "--config", str(config), "continuous", "run"],
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)  # noqa: SIM115


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def pieces(store) -> list[tuple[float, int, str]]:
    return sorted((i.modified, i.size, i.key) for i in store.list(f"{replica_prefix('booking')}/generations/")
                  if i.key.endswith((".wal.lz4", ".snapshot.lz4")))


def wait_for(store, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pieces(store):
            return
        time.sleep(0.5)
    raise SystemExit(f"no replica in {store.region} after {timeout} s")


def lags(commits: list[float], arrivals: list[float]) -> list[float]:
    out, j = [], 0
    arrivals = sorted(arrivals)
    for c in commits:
        while j < len(arrivals) and arrivals[j] < c:
            j += 1
        if j == len(arrivals):
            break
        out.append(arrivals[j] - c)
    return out


def summary(values: list[float]) -> dict:
    values = sorted(values)
    return {"n": len(values), "p50_s": round(statistics.median(values), 3),
            "p95_s": round(values[int(0.95 * (len(values) - 1))], 3), "max_s": round(values[-1], 3)}


def rpo_and_cost(root: Path, weed, seconds: int) -> dict:
    db = generate(root / "live" / "booking.db", 8, seed=3)
    os.environ.update(BENCH_ENDPOINT=weed.endpoint, BENCH_KEY=ACCESS_KEY, BENCH_SECRET=SECRET_KEY)
    cfg = load_config(write_cfg(root, db, "BENCH_ENDPOINT", weed.make_bucket(f"cont-{int(time.time())}")))
    stores = {r.name: Clients(cfg).store(r) for r in cfg.regions}
    proc = start(cfg.source, root / "litestream.log")
    try:
        for store in stores.values():
            wait_for(store, 60)
        before = {name: pieces(s) for name, s in stores.items()}
        con = sqlite3.connect(db, isolation_level=None)
        con.execute("CREATE TABLE IF NOT EXISTS bench_log (id INTEGER PRIMARY KEY, at REAL)")
        commits, began = [], time.time()
        while time.time() - began < seconds:
            con.execute("INSERT INTO bench_log (at) VALUES (?)", (time.time(),))
            commits.append(time.time())
            time.sleep(0.1)
        con.close()
        time.sleep(5)
        after = {name: pieces(s) for name, s in stores.items()}
    finally:
        stop(proc)
    out = {"seconds": seconds, "commits": len(commits)}
    for name in stores:
        new = [p for p in after[name] if p not in before[name]]
        hours = seconds / 3600
        out[name] = {"lag": summary(lags(commits, [p[0] for p in new])),
                     "puts_per_hour": round(len(new) / hours), "bytes_per_hour": round(sum(p[1] for p in new) / hours)}
    return out


def timed(argv: list[str], env: dict | None = None) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run(argv, check=True, env=env, capture_output=True, text=True)
    return round(time.monotonic() - started, 2), done.stdout


def restore_1gib(root: Path, size_mb: int) -> dict:
    db = root / "big" / "booking.db"
    t0 = time.monotonic()
    generate(db, size_mb, seed=5)
    made = time.monotonic() - t0
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    doc = {"timezone": "UTC", "databases": [{"name": "booking", "engine": "sqlite", "path": str(db)}],
           "regions": [{"name": "local", "kind": "local", "path": str(root / "big-region"), "create": True}],
           "continuous": {}}
    (root / "big.yaml").write_text(yaml.safe_dump(doc))
    cfg = load_config(root / "big.yaml")
    store = Clients(cfg).store(cfg.regions[0])
    t0 = time.monotonic()
    proc = start(cfg.source, root / "litestream-big.log")
    try:
        deadline = time.monotonic() + 900
        while not any(p[2].endswith(".snapshot.lz4") for p in pieces(store)) and time.monotonic() < deadline:
            time.sleep(1)
        first_snapshot = time.monotonic() - t0
        con = sqlite3.connect(db, isolation_level=None)
        con.execute("CREATE TABLE IF NOT EXISTS bench_log (id INTEGER PRIMARY KEY, at REAL)")
        for _ in range(200):
            con.execute("INSERT INTO bench_log (at) VALUES (?)", (time.time(),))
            time.sleep(0.05)
        moment = datetime.now(UTC)
        for _ in range(100):
            con.execute("INSERT INTO bench_log (at) VALUES (?)", (time.time(),))
            time.sleep(0.05)
        con.close()
        time.sleep(3)
    finally:
        stop(proc)
    at = (moment - timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ours, said = timed([PY, "-m", "ops_project", "--config", str(cfg.source), "backups", "restore", "--database",
                        "booking", "--at", at, "--to", str(root / "ours.db"), "--region", "local"])
    config = write_config(cfg, root / "plain")
    plain, _ = timed([binary(), "restore", "-config", str(config), "-replica", "local", "-timestamp", at,
                      "-o", str(root / "plain.db"), str(db)], env=environment(cfg))
    from ops_project.continuous.pitr import integrity  # noqa: PLC0415

    t0 = time.monotonic()
    assert integrity(root / "plain.db") == "ok"
    check = round(time.monotonic() - t0, 2)
    return {"size_bytes": db.stat().st_size, "generate_s": round(made, 1), "first_snapshot_s": round(first_snapshot, 1),
            "restore_at_ours_s": ours, "ours_said": said.strip(), "restore_at_litestream_s": plain,
            "integrity_check_s": check}


def postgres_rpo_and_cost(seconds: int) -> dict:
    import shutil

    import psycopg

    from ops_project.continuous.pgbackrest import PREFIX, base_backup, server_settings, setup
    from ops_project.continuous.pgbackrest import environment as pg_environment
    from ops_project.continuous.replicas import WAL_SEGMENT
    from tests.servers import PG_BIN, archiving_postgres, make_archiving_cluster, self_signed

    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    cert, key = self_signed(root)
    weed = start_weed(root / "weed", tls=(cert, key))
    try:
        data, port = make_archiving_cluster(root)
        os.environ.update(BENCH_TLS_ENDPOINT=weed.https_endpoint, BENCH_KEY=ACCESS_KEY, BENCH_SECRET=SECRET_KEY,
                          AWS_CA_BUNDLE=str(cert), BENCH_PG_URL=f"postgresql://postgres@127.0.0.1:{port}/postgres")
        doc = {"timezone": "UTC", "databases": [{"name": "core", "engine": "postgres", "url_env": "BENCH_PG_URL"}],
               "regions": [{"name": "local", "kind": "local", "path": str(root / "region-local"), "create": True},
                           {"name": "seaweed", "kind": "s3", "bucket": weed.make_bucket(f"pg-{int(time.time())}"),
                            "endpoint_url_env": "BENCH_TLS_ENDPOINT", "access_key_id_env": "BENCH_KEY",
                            "secret_access_key_env": "BENCH_SECRET"}],
               "restore": {"scratch_dir": str(root)},
               "continuous": {"pgbackrest_dir": str(root / "pgbackrest"),
                              "postgres": {"core": {"data_directory": str(data), "port": port,
                                                    "socket_dir": str(root)}}}}
        (root / "ops.yaml").write_text(yaml.safe_dump(doc))
        cfg = load_config(root / "ops.yaml")
        (root / "region-local").mkdir()
        stores = {r.name: Clients(cfg).store(r) for r in cfg.regions}
        server_env = {**os.environ, **pg_environment(cfg)}

        def segments(store) -> list[tuple[float, int, str]]:
            return sorted((i.modified, i.size, i.key) for i in store.list(f"{PREFIX}/archive/core/")
                          if WAL_SEGMENT.search(i.key))

        with archiving_postgres(root, data, port, server_settings(cfg, "core"), env=server_env):
            setup(cfg, "core")
            base_backup(cfg, "core")
            before = {name: segments(st) for name, st in stores.items()}
            commits, began = [], time.time()
            with psycopg.connect(os.environ["BENCH_PG_URL"], autocommit=True) as con:
                con.execute("CREATE TABLE bench_log (id bigserial PRIMARY KEY, at double precision)")
                while time.time() - began < seconds:
                    con.execute("INSERT INTO bench_log (at) VALUES (%s)", (time.time(),))
                    commits.append(time.time())
                    time.sleep(0.1)
            time.sleep(cfg.continuous.postgres["core"].archive_timeout_seconds + 10)
            after = {name: segments(st) for name, st in stores.items()}
            moment = datetime.fromtimestamp(commits[len(commits) // 2], UTC)
            at = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            ours, said = timed([PY, "-m", "ops_project", "--config", str(cfg.source), "backups", "restore",
                                "--database", "core", "--at", at, "--to", str(root / "ours"), "--region", "local"])
            plain_dir = root / "plain"
            plain_dir.mkdir(mode=0o700)
            if os.geteuid() == 0:
                shutil.chown(plain_dir, "postgres")
            as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
            t0 = time.monotonic()  # pgBackRest's restore, then the server replays the WAL and promotes
            subprocess.run([*as_owner, "pgbackrest", f"--config={root / 'pgbackrest' / 'pgbackrest.conf'}",
                            "--stanza=core", "--repo=1", f"--pg1-path={plain_dir}", "--type=time",
                            f"--target={moment:%Y-%m-%d %H:%M:%S.%f}+00", "--target-action=promote",
                            "--archive-mode=off", "restore"], env=server_env, check=True, capture_output=True)
            ctl = [*as_owner, str(PG_BIN / "pg_ctl"), "-D", str(plain_dir)]
            subprocess.run([*ctl, "-l", str(plain_dir / "log"), "-w", "-o",
                            f"-p {port + 1} -c listen_addresses='' -c unix_socket_directories='{plain_dir}'",
                            "start"], env=server_env, check=True, capture_output=True)
            while True:
                with psycopg.connect(host=str(plain_dir), port=port + 1, user="postgres", dbname="postgres") as c:
                    if not c.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                        break
                time.sleep(0.1)
            plain = round(time.monotonic() - t0, 2)
            subprocess.run([*ctl, "-m", "fast", "-w", "stop"], capture_output=True)
        out = {"seconds": seconds, "commits": len(commits), "restore_at_ours_s": ours, "ours_said": said.strip(),
               "pgbackrest_restore_alone_s": plain}
        for name in stores:
            new = [p for p in after[name] if p not in before[name]]
            hours = seconds / 3600
            out[name] = {"lag": summary(lags(commits, [p[0] for p in new])), "segments": len(new),
                         "puts_per_hour": round(len(new) / hours),
                         "bytes_per_hour": round(sum(p[1] for p in new) / hours)}
        return out
    finally:
        weed.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--out", default=str(REPO / "bench" / "out"))
    parser.add_argument("--only", choices=["rpo", "restore", "postgres"], help="one part only")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="bench-continuous-", dir=out))
    (root / "weed").mkdir()
    weed = start_weed(root / "weed")
    results = {}
    try:
        if args.only in (None, "rpo"):
            results["rpo_and_cost"] = rpo_and_cost(root, weed, args.seconds)
            print(json.dumps(results, indent=1), flush=True)
        if args.only in (None, "restore"):
            results["restore"] = restore_1gib(root, args.size_mb)
        if args.only in (None, "postgres"):
            results["postgres"] = postgres_rpo_and_cost(args.seconds)
    finally:
        weed.stop()
    print(json.dumps(results, indent=1))
    (out / "continuous.json").write_text(json.dumps(results, indent=1))
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
