"""Where a launched run's time goes before and after its step's real work, by phase, from the run's own events.

A run is launched as the UI launches it (``dagster job launch`` → the instance's run launcher → a new process
that loads the code location), on a throw-away ``DAGSTER_HOME`` and a throw-away copy of the embedded default
(demo database, two local regions). Phases, each the median over ``--rounds`` runs:

- ``launch → run process up``: from the run's creation to RUN_START (process start + loading the definitions);
- ``run start → step start``: the executor (Dagster's default multiprocess executor starts one more process
  per step and loads the definitions again there; the in-process executor this code location uses does not);
- ``step``: the step itself (``verified_rpo``: reading every region's backups);
- ``step end → run end``.

Usage: ``.venv/bin/python bench/run_overhead.py --rounds 3``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PHASES = ("launch → run process up", "run start → step start", "step", "step end → run end", "total")


def _phases(instance, run_id: str) -> dict[str, float]:
    from dagster import DagsterEventType

    record = instance.get_run_record_by_id(run_id)
    created = record.create_timestamp.timestamp() if record.create_timestamp.tzinfo else \
        record.create_timestamp.replace(tzinfo=__import__("datetime").UTC).timestamp()
    at = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is not None:
            at.setdefault(event.event_type, entry.timestamp)
    # (the RPO over its objective on a fresh region fails the step and the run: the same work either way)
    step_end = at.get(DagsterEventType.STEP_SUCCESS, at.get(DagsterEventType.STEP_FAILURE))
    run_end = at.get(DagsterEventType.RUN_SUCCESS, at.get(DagsterEventType.RUN_FAILURE))
    return {
        "launch → run process up": at[DagsterEventType.RUN_START] - created,
        "run start → step start": at[DagsterEventType.STEP_START] - at[DagsterEventType.RUN_START],
        "step": step_end - at[DagsterEventType.STEP_START],
        "step end → run end": run_end - step_end,
        "total": run_end - created,
    }


def _launch(env: dict) -> None:
    subprocess.run([str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", "verified_rpo_job"],
                   cwd=REPO, env=env, capture_output=True, text=True, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs per executor (the median is reported)")
    args = parser.parse_args()
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._core.instance.ref import InstanceRef

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "home").mkdir()
        (tmp / "home" / "dagster.yaml").write_text(  # launched at once: no queue, so no daemon in the figures
            "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster._core.run_coordinator\n"
            "  class: DefaultRunCoordinator\n")
        doc = yaml.safe_load((REPO / "ops.yaml").read_text())
        doc.pop("releases", None)
        doc["databases"][0]["path"] = str(tmp / "demo" / "booking.db")
        for region in doc["regions"]:
            region["path"] = str(tmp / "regions" / region["name"])
        (tmp / "ops.yaml").write_text(yaml.safe_dump(doc))
        env = dict(os.environ, DAGSTER_HOME=str(tmp / "home"), OPS_CONFIG=str(tmp / "ops.yaml"))
        results: dict[str, dict[str, list[float]]] = {}
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp / "home"))) as instance:
            for _ in range(args.rounds):
                for executor in ("this code location",):
                    before = {r.run_id for r in instance.get_runs()}
                    _launch(env)
                    (run_id,) = {r.run_id for r in instance.get_runs()} - before
                    deadline = time.monotonic() + 120
                    while instance.get_run_by_id(run_id).status not in (DagsterRunStatus.SUCCESS,
                                                                           DagsterRunStatus.FAILURE):
                        if time.monotonic() > deadline:
                            raise SystemExit(f"run {run_id} did not finish within 120 s")
                        time.sleep(0.2)
                    for phase, seconds in _phases(instance, run_id).items():
                        results.setdefault(executor, {}).setdefault(phase, []).append(seconds)
    print(f"{'phase':<26}" + "".join(f"{e:>20}" for e in results))
    for phase in PHASES:
        print(f"{phase:<26}" + "".join(f"{statistics.median(results[e][phase]):>19.2f}s" for e in results))


if __name__ == "__main__":
    main()
