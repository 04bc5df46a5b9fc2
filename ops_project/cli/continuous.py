"""``continuous config|run|setup|base-backup|status|mark``: continuous protection without Dagster: Litestream's
replication of SQLite databases and pgBackRest's WAL archiving of PostgreSQL clusters."""

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

    cfg = _cfg(args)
    if args.pgbackrest:
        from ops_project.continuous.pgbackrest import config_text

        print(config_text(cfg), end="")
        return exits.OK
    from ops_project.continuous.litestream import litestream_config

    print(yaml.safe_dump(litestream_config(cfg), sort_keys=False), end="")
    return exits.OK


def _archived(cfg, name: str | None) -> list:
    from ops_project.common.errors import ConfigError, UnknownNameError

    if not cfg.continuous_postgres:
        raise ConfigError(f"{cfg.source}: no PostgreSQL database is archived (add continuous.postgres; README, "
                          f"\"Continuous protection\")")
    chosen = [d for d in cfg.continuous_postgres if name in (None, d.name)]
    if not chosen:
        raise UnknownNameError(f"--database {name}: not archived with pgBackRest (continuous.postgres names "
                               f"{', '.join(d.name for d in cfg.continuous_postgres)})")
    return chosen


def cmd_setup(args: argparse.Namespace) -> int:
    """pgBackRest's configuration written, each stanza created in every region and checked end to end."""
    from ops_project.continuous.pgbackrest import (
        ArchiveFailed,
        config_path,
        server_settings,
        server_variables,
        setup,
        write_config,
    )

    cfg = _cfg(args)
    databases = _archived(cfg, args.database)
    write_config(cfg)
    print(f"pgBackRest configuration: {config_path(cfg)} (no secret in it)")
    needs = server_variables(cfg)
    if needs:
        print("the PostgreSQL service's environment needs (an EnvironmentFile only it can read; README):\n" +
              "\n".join(f"  {name}  ({source})" for name, source in needs))
    failed = 0
    for db in databases:
        lines = "\n".join(f"  {k} = '{v}'" for k, v in server_settings(cfg, db.name).items())
        print(f"{db.name}: postgresql.conf needs (then restart the server):\n{lines}")
        try:
            setup(cfg, db.name)
        except ArchiveFailed as exc:
            failed += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        print(f"{db.name}: stanza ready in {', '.join(r.name for r in cfg.regions)}; the server's archiving reaches "
              f"every region (pgbackrest check)")
    return exits.FAILED if failed else exits.OK


def cmd_base_backup(args: argparse.Namespace) -> int:
    from ops_project.continuous.pgbackrest import base_backup

    cfg = _cfg(args)
    for db in _archived(cfg, args.database):
        for done in base_backup(cfg, db.name):
            print(f"{db.name}: full backup {done.label} in {done.region} ({done.seconds:.1f}s)")
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
    from ops_project.common.errors import ConfigError
    from ops_project.continuous.replicas import survey

    cfg = _cfg(args)
    if not cfg.continuous_protected:
        raise ConfigError(f"{cfg.source}: no database is continuously protected: add a `continuous:` section "
                          f"(README, \"Continuous protection\")")

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
    from ops_project.clients import Clients
    from ops_project.continuous.markers import write_all

    cfg = _cfg(args)
    at = datetime.now(UTC)
    problems = write_all(cfg, Clients(cfg).database_url, at)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    names = [d.name for d in cfg.continuous_protected]
    print(f"marker {at.isoformat()} written into {', '.join(names) or 'nothing'}"
          f"{f' ({len(problems)} failed)' if problems else ''}")
    return exits.FAILED if problems else exits.OK


def add_parsers(sub) -> list[argparse.ArgumentParser]:
    csub = group(sub, "continuous", "continuous replication of SQLite databases with Litestream (restore to a moment)")
    cfg = command(csub, "config", "print the Litestream configuration written from ops.yaml (it holds no secret)")
    cfg.add_argument("--pgbackrest", action="store_true", help="print pgBackRest's configuration instead")
    cfg.set_defaults(func=cmd_config)
    setup = command(csub, "setup", "PostgreSQL: write pgBackRest's configuration, create each stanza in every region, "
                                   "check that archiving reaches them",
                    "Run it on the database host (as root, or as the cluster's owner). It prints the lines\n"
                    "postgresql.conf needs; `pgbackrest check` fails until they are in place and the server\n"
                    "restarted. S3 regions' endpoints and keys come from the variables the regions name.")
    setup.add_argument("--database", help="only this archived database (default: every one)")
    setup.set_defaults(func=cmd_setup)
    base = command(csub, "base-backup", "PostgreSQL: a full pgBackRest backup into every region now",
                   "Dagster's continuous_base_backup_schedule does it on continuous.base_backup_cron; a restore to a\n"
                   "moment starts from the newest full backup before it.")
    base.add_argument("--database", help="only this archived database (default: every one)")
    base.set_defaults(func=cmd_base_backup)
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
    return [cfg, setup, base, run, status, mark]
