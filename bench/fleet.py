"""A fleet of tenant databases through the daemon: one backup window of N SQLite tenants of 1–5 MB each,
snapshotted, replicated to a second region and restore-verified, each with its own partition status.

What it does, on a throw-away directory (``--dir``), with the code location and the daemon as production runs
them (``dagster dev``: webserver + daemon + code server; the run queue of ``deploy/dagster.local.yaml`` or, with
``--storage postgres``, of ``deploy/dagster.yaml`` on a throw-away database of the machine's PostgreSQL):

1. writes N tenants (copies of five generated demo databases of 1, 2, 3, 4 and 5 MB) and an ``ops.yaml``
   whose backup cron fires two minutes from now (hourly windows, so the tick backs up the window that ended);
2. waits for the daemon's ``backup_schedule`` tick and measures it (tick start → end, runs requested);
3. waits for every run, then reads every tenant's partition status of the three backup assets
   (``database_backup``, ``backup_replica/eu-west-1``, ``restore_verification``): all must be materialized;
4. times the Partitions page's GraphQL query for ``database_backup`` (N databases × windows);
5. launches ``verified_rpo_job`` as the UI would and times the run (and its step);
6. reports the per-database cost (step time / databases in the run) and the fixed cost per run (run time −
   step time), from the runs' own events;
7. with ``--restore-backfill``, launches a backfill of ``restore_verification`` over the window's N partitions
   (``launchPartitionBackfill``, as the UI does) and times it to its end: one run per partition (README,
   "Restore backfills at fleet scale", says why not batches), each restoring and proving one backup.

Usage: ``.venv/bin/python bench/fleet.py --tenants 1000`` (add ``--storage postgres`` for PostgreSQL storage).
Goals (issue 14): all tenants in < 10 min, the tick < 30 s, the partition status query < 3 s, the verified-RPO
job < 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BIN = Path(sys.executable).parent
ASSETS = (["database_backup"], ["backup_replica", "eu-west-1"], ["restore_verification"])


def make_tenants(root: Path, n: int) -> list[dict]:
    from ops_project.demo.database import generate

    templates = [generate(root / "templates" / f"{mb}mb.db", mb, seed=mb) for mb in (1, 2, 3, 4, 5)]
    d1 = root / "d1"
    d1.mkdir(parents=True, exist_ok=True)
    dbs = []
    for i in range(n):
        path = d1 / f"tenant-{i:04d}.db"
        shutil.copyfile(templates[i % len(templates)], path)
        dbs.append({"name": f"tenant-{i:04d}", "engine": "sqlite", "path": str(path)})
    return dbs


def write_config(root: Path, dbs: list[dict], *, minute: int, batch_size: int, workers: int) -> Path:
    regions = []
    for name in ("af-south-1", "eu-west-1"):
        (root / "regions" / name).mkdir(parents=True, exist_ok=True)
        regions.append({"name": name, "kind": "local", "path": str(root / "regions" / name)})
    start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=minute, second=0, microsecond=0, tzinfo=None)
    doc = {"timezone": "UTC", "databases": dbs, "regions": regions,
           "backup": {"cron": f"{minute} * * * *", "start": start.isoformat(), "batch_size": batch_size,
                      "batch_workers": workers}}
    path = root / "ops.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_instance(home: Path, storage: str, max_runs: int, env: dict, dequeue_interval: int | None = None
                   ) -> str | None:
    """The instance settings; for PostgreSQL a throw-away database (returned, to drop at the end)."""
    home.mkdir(parents=True, exist_ok=True)
    source = REPO / "deploy" / ("dagster.yaml" if storage == "postgres" else "dagster.local.yaml")
    doc = yaml.safe_load(source.read_text())
    doc["run_coordinator"]["config"]["max_concurrent_runs"] = max_runs
    if dequeue_interval is not None:
        doc["run_coordinator"]["config"]["dequeue_interval_seconds"] = dequeue_interval
    doc.setdefault("telemetry", {"enabled": False})
    (home / "dagster.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    if storage != "postgres":
        return None
    import psycopg

    name = f"ops_fleet_bench_{os.getpid()}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    env.update(OPS_DAGSTER_PG_HOST="127.0.0.1", OPS_DAGSTER_PG_PORT="5432", OPS_DAGSTER_PG_DB=name,
               OPS_DAGSTER_PG_USER="postgres", OPS_DAGSTER_PG_PASSWORD="")
    return name


def start_dagster(root: Path, env: dict) -> tuple[subprocess.Popen, int]:
    sock = __import__("socket").socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    log = open(root / "dagster-dev.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"dagster dev exited: {(root / 'dagster-dev.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit("dagster dev did not answer in 300 s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _utc(ts) -> float:
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


def run_phases(instance, run_id: str) -> dict[str, float]:
    from dagster import DagsterEventType

    record = instance.get_run_record_by_id(run_id)
    at = {}
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.RUN_DEQUEUED, DagsterEventType.RUN_START,
                                                    DagsterEventType.STEP_START,
                                                    DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE,
                                                    DagsterEventType.RUN_SUCCESS, DagsterEventType.RUN_FAILURE}):
        at.setdefault(entry.dagster_event.event_type, entry.timestamp)
    end = at.get(DagsterEventType.RUN_SUCCESS, at.get(DagsterEventType.RUN_FAILURE))
    step_end = at.get(DagsterEventType.STEP_SUCCESS, at.get(DagsterEventType.STEP_FAILURE))
    return {"created": _utc(record.create_timestamp), "dequeued": at.get(DagsterEventType.RUN_DEQUEUED),
            "start": at.get(DagsterEventType.RUN_START),
            "step": (step_end - at[DagsterEventType.STEP_START]) if step_end else None, "end": end,
            "ok": DagsterEventType.RUN_SUCCESS in at}


PARTITIONS_QUERY = """query ($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  assetPartitionStatuses { ... on MultiPartitionStatuses { primaryDimensionName ranges {
    primaryDimStartKey primaryDimEndKey secondaryDim {
      ... on TimePartitionStatuses { ranges { startKey endKey status } }
      ... on DefaultPartitionStatuses { materializedPartitions failedPartitions unmaterializedPartitions } } } } }
  partitionKeysByDimension { name partitionKeys } } } }"""


def restore_backfill(instance, port: int, keys: list[str]) -> dict:
    """A backfill of ``restore_verification`` over ``keys``, launched over GraphQL as the UI does, to its end."""
    from dagster import RunsFilter

    t0 = time.time()
    answer = httpx.post(f"http://127.0.0.1:{port}/graphql", timeout=300, json={"query": """
        mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
          __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        "variables": {"p": {"partitionNames": keys, "assetSelection": [{"path": ["restore_verification"]}]}}}).json()
    result = answer["data"]["launchPartitionBackfill"]
    if result["__typename"] != "LaunchBackfillSuccess":
        raise SystemExit(f"could not launch the restore backfill: {result}")
    backfill_id = result["backfillId"]
    print(f"restore backfill {backfill_id} over {len(keys)} partitions launched ...")
    while True:
        backfill = instance.get_backfill(backfill_id)
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfill_id}))
        if backfill.status.value != "REQUESTED" and runs and all(r.is_finished for r in runs):
            break
        time.sleep(5)
    phases = [run_phases(instance, r.run_id) for r in runs]
    done = max(p["end"] for p in phases if p["end"])
    steps = [p["step"] for p in phases if p["step"]]
    return {"restore_backfill_partitions": len(keys), "restore_backfill_runs": len(runs),
            "restore_backfill_runs_failed": sum(1 for p in phases if not p["ok"]),
            "restore_backfill_seconds": round(done - t0, 1),
            "restore_backfill_seconds_per_partition": round((done - t0) / len(keys), 2),
            "restore_backfill_step_seconds_median": round(statistics.median(steps), 2),
            "restore_backfill_run_seconds_median": round(statistics.median(
                p["end"] - (p["dequeued"] or p["start"]) for p in phases if p["end"] and p["start"]), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2, help="backup.batch_workers (databases in flight per run)")
    ap.add_argument("--max-runs", type=int, default=2, help="the run queue's max_concurrent_runs")
    ap.add_argument("--storage", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--dir", type=Path, default=None, help="work directory (default: a new temporary one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--dequeue-interval", type=int, default=None,
                    help="the run queue's dequeue_interval_seconds (default: the shipped instance's)")
    ap.add_argument("--restore-backfill", action="store_true",
                    help="then re-test the window's backups with a restore_verification backfill, and time it")
    args = ap.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="ops-fleet-"))
    root.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    dbs = make_tenants(root, args.tenants)
    print(f"{len(dbs)} tenants written in {time.perf_counter() - t:.1f} s under {root}")
    fire = datetime.now(UTC) + timedelta(minutes=2)
    minute = fire.minute
    config = write_config(root, dbs, minute=minute, batch_size=args.batch_size, workers=args.workers)
    home = root / "dagster_home"
    env = dict(os.environ, DAGSTER_HOME=str(home), OPS_CONFIG=str(config))
    pg_db = write_instance(home, args.storage, args.max_runs, env, args.dequeue_interval)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("OPS_", "DAGSTER_HOME"))})
    proc, port = start_dagster(root, env)
    figures: dict = {"tenants": args.tenants, "batch_size": args.batch_size, "workers": args.workers,
                     "max_concurrent_runs": args.max_runs, "storage": args.storage,
                     "dequeue_interval_seconds": args.dequeue_interval}
    try:
        from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

        instance = DagsterInstance.get()
        tick_at = fire.replace(second=0, microsecond=0)
        print(f"waiting for the backup_schedule tick at {tick_at:%H:%M} UTC ...")
        runs = []
        deadline = tick_at.timestamp() + 600
        expected = -(-args.tenants // args.batch_size)
        while time.time() < deadline:
            runs = instance.get_runs(RunsFilter(tags={"ops/kind": "backup"}))
            if len(runs) >= expected:
                break
            time.sleep(1)
        tick = None
        while tick is None and time.time() < deadline:
            ticks = [t for state in instance.all_instigator_state() if state.instigator_name == "backup_schedule"
                     for t in instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=5)]
            tick = next((t for t in ticks if t.tick_data.end_timestamp and t.tick_data.run_ids), None)
            time.sleep(0.5)
        if tick is not None:  # from the scheduled time (the daemon wakes a few seconds after it) to the tick's end
            figures["tick_seconds"] = round(tick.tick_data.end_timestamp - tick.timestamp, 2)
        figures["runs"] = len(runs)
        print(f"tick: {figures.get('tick_seconds')} s, {len(runs)} runs")
        while True:
            runs = instance.get_runs(RunsFilter(tags={"ops/kind": "backup"}))
            if all(r.is_finished for r in runs):
                break
            time.sleep(2)
        phases = [run_phases(instance, r.run_id) for r in runs]
        ends = [p["end"] for p in phases if p["end"]]
        figures["window_seconds"] = round(max(ends) - tick_at.timestamp(), 1)
        figures["runs_failed"] = sum(1 for r in runs if r.status != DagsterRunStatus.SUCCESS)
        timed = [p for p in phases if p["end"] and p["start"] and p["step"]]
        steps = [p["step"] for p in timed]
        figures["step_seconds_median"] = round(statistics.median(steps), 2)
        figures["per_database_seconds"] = round(statistics.median(steps) / args.batch_size, 3)
        # a run's fixed cost: from leaving the queue (its process starting) to its end, less the step's own work
        figures["fixed_seconds_per_run"] = round(statistics.median(
            p["end"] - (p["dequeued"] or p["start"]) - p["step"] for p in timed), 2)
        figures["queue_to_start_seconds_median"] = round(statistics.median(
            p["start"] - p["created"] for p in phases if p["start"]), 2)
        print(json.dumps(figures))

        from dagster import AssetKey
        from dagster._core.storage.partition_status_cache import AssetPartitionStatus

        from assets.partitions import backup_partition_key, backup_partitions, last_window_key
        from ops_project.config import load_config

        cfg = load_config(config)
        window = last_window_key(cfg, tick_at)
        keys = [str(backup_partition_key(db["name"], window)) for db in dbs]
        good = {}
        for path in ASSETS:
            status = instance.get_status_by_partition(AssetKey(path), keys, backup_partitions(cfg))
            good["/".join(path)] = sum(1 for k in keys if status[k] == AssetPartitionStatus.MATERIALIZED)
        figures["materialized"] = good
        print(f"materialized partitions of window {window}: {good}")

        timings = []
        for _ in range(3):
            t = time.perf_counter()
            answer = httpx.post(f"http://127.0.0.1:{port}/graphql", timeout=120, json={
                "query": PARTITIONS_QUERY, "variables": {"path": ["database_backup"]}}).json()
            timings.append(time.perf_counter() - t)
            assert "errors" not in answer, answer["errors"][:1]
        figures["partition_status_graphql_seconds"] = [round(x, 2) for x in timings]
        print(f"partition status GraphQL: {figures['partition_status_graphql_seconds']} s")

        launched = subprocess.run([str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j",
                                   "verified_rpo_job"], cwd=REPO, env=env, capture_output=True, text=True)
        if launched.returncode != 0:
            raise SystemExit(f"could not launch verified_rpo_job: {launched.stderr[-2000:]}")
        while True:
            rpo_runs = instance.get_runs(RunsFilter(job_name="verified_rpo_job"))
            if rpo_runs and all(r.is_finished for r in rpo_runs):
                break
            time.sleep(1)
        p = run_phases(instance, rpo_runs[0].run_id)
        figures["verified_rpo_run_seconds"] = round(p["end"] - p["created"], 2)
        figures["verified_rpo_step_seconds"] = round(p["step"], 2) if p["step"] else None
        figures["verified_rpo_ok"] = p["ok"]
        if args.restore_backfill:
            figures.update(restore_backfill(instance, port, keys))
        print(json.dumps(figures, indent=1))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1))
    finally:
        stop(proc)
        if pg_db:
            import psycopg

            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as con:
                con.execute(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)')
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
