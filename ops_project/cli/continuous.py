"""``continuous config|run|status|mark``: Litestream's continuous replication, without Dagster."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

from ops_project.cli import exits
from ops_project.cli.parsing import command, group


def _cfg(args: argparse.Namespace):
    from ops_project.config import load_config

    return load_config(args.config)


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from ops_project.continuous.litestream import litestream_config

    print(yaml.safe_dump(litestream_config(_cfg(args)), sort_keys=False), end="")
    return exits.OK


def cmd_run(args: argparse.Namespace) -> int:
    """Become Litestream (exec): a supervisor's stop and restart reach it directly."""
    from ops_project.clients import Clients
    from ops_project.continuous.litestream import environment, replicate_command, write_config
    from ops_project.continuous.markers import write_marker

    cfg = _cfg(args)
    clients = Clients(cfg)
    for db in cfg.continuous_databases:
        clients.database_url(db)  # the embedded default's demo database is generated on first use
        write_marker(db.path, datetime.now(UTC), keep_hours=cfg.continuous.retention_hours + 24)
    env = environment(cfg)
    argv = replicate_command(cfg, write_config(cfg))
    names = ", ".join(db.name for db in cfg.continuous_databases)
    print(f"litestream: replicating {names} to {', '.join(r.name for r in cfg.regions)} "
          f"(config {argv[-1]})", file=sys.stderr, flush=True)
    os.execve(argv[0], argv, env)
    return exits.FAILED  # not reached


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _cfg(args)
    from ops_project.continuous.litestream import litestream_config

    litestream_config(cfg)  # a clear error when nothing is continuously protected
    from ops_project.continuous.replicas import survey

    found = survey(cfg, datetime.now(UTC))
    if args.json:
        print(json.dumps([{"database": f.database, "region": f.region, "status": f.status,
                           "current_rpo_seconds": None if f.age_seconds is None else round(f.age_seconds, 1),
                           "over_objective": f.over_objective,
                           "newest": r.newest.isoformat() if r.newest else None,
                           "restorable_from": r.oldest_snapshot.isoformat() if r.oldest_snapshot else None,
                           "text": f.text} for r, f in found], indent=2))
    else:
        for r, f in found:
            label = {"ok": "OVER OBJECTIVE" if f.over_objective else "ok", "stalled": "STALLED",
                     "never": "NO REPLICA", "unreachable": "UNREACHABLE (our environment)"}[f.status]
            since = f" (restorable from {r.oldest_snapshot:%Y-%m-%dT%H:%M:%SZ})" if r.oldest_snapshot else ""
            print(f"{label:<14} {f.text}{since}")
    if any(f.status == "unreachable" for _, f in found) and all(f.ok or f.status == "unreachable" for _, f in found):
        return exits.FAILED  # could not look: not a verdict on the replicas
    return exits.OK if all(f.ok for _, f in found) else exits.UNTRUSTED


def cmd_mark(args: argparse.Namespace) -> int:
    from ops_project.continuous.markers import write_marker

    cfg = _cfg(args)
    at = datetime.now(UTC)
    for db in cfg.continuous_databases:
        write_marker(db.path, at, keep_hours=cfg.continuous.retention_hours + 24)
    print(f"marker {at.isoformat()} written into {', '.join(d.name for d in cfg.continuous_databases) or 'nothing'}")
    return exits.OK


def add_parsers(sub) -> list[argparse.ArgumentParser]:
    csub = group(sub, "continuous", "continuous replication of SQLite databases with Litestream (restore to a moment)")
    cfg = command(csub, "config", "print the Litestream configuration written from ops.yaml (it holds no secret)")
    cfg.set_defaults(func=cmd_config)
    run = command(csub, "run", "start Litestream replicating every continuously protected database to every region",
                  "Runs in the foreground until stopped (a process supervisor's job: deploy/systemd/"
                  "ops-litestream.service). The environment Litestream gets holds only what the regions name.")
    run.set_defaults(func=cmd_run)
    status = command(csub, "status", "how far each replica has got: the current RPO of each database in each region",
                     "Exit 0: every replica advancing within the objective; 3: a replica stalled, missing or over "
                     "the objective; 1: a region could not be read (our environment, not a verdict).")
    status.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
    status.set_defaults(func=cmd_status)
    mark = command(csub, "mark", "write a marker row into each continuously protected database now",
                   "Dagster's continuous_replication_sensor writes one every continuous.marker_seconds; this is "
                   "for running without Dagster (cron).")
    mark.set_defaults(func=cmd_mark)
    return [cfg, run, status, mark]
