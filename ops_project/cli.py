"""``python -m ops_project``: the tools on-call needs when Dagster itself is down.

Uses the same domain code as the assets and never imports Dagster, so it starts fast.
Exit codes: 0 success, 1 an operation failed (message on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ops_project.errors import OpsError


def _cmd_demo_db(args: argparse.Namespace) -> int:
    from ops_project.demo.database import generate

    path = generate(args.path, args.size_mb, seed=args.seed)
    print(f"demo database written to {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def _cmd_take(args: argparse.Namespace) -> int:
    from ops_project.backup import take_backup
    from ops_project.config import load_config
    from ops_project.replication import replicate
    from ops_project.runtime import prepare_database, recipients_for, store_for

    cfg = load_config(args.config)
    db = cfg.database(args.database)
    pg_url = prepare_database(db)
    recipients = recipients_for(cfg)
    primary = store_for(cfg, cfg.primary)
    log = (lambda m: print(m, file=sys.stderr)) if not args.quiet else (lambda m: None)
    manifest = take_backup(db, primary, cfg.backup, pg_url=pg_url, recipients=recipients, log=log)
    print(f"backup {manifest.backup_id} of {db.name}: {primary.describe(f'backups/{db.name}/{manifest.backup_id}/')}")
    for region in cfg.secondaries:
        result = replicate(primary, store_for(cfg, region), db.name, manifest.backup_id)
        print(f"  replicated to {region.name}: {result.bytes} bytes, verified, lag {result.lag_seconds:.1f}s")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from ops_project.catalog import list_backups
    from ops_project.config import load_config
    from ops_project.runtime import store_for

    cfg = load_config(args.config)
    if args.database:
        cfg.database(args.database)
    regions = [cfg.region(args.region)] if args.region else cfg.regions
    rows = []
    for region in regions:
        store = store_for(cfg, region)
        for entry in list_backups(store, args.database):
            m = entry.manifest
            rows.append({
                "region": region.name, "database": entry.database, "backup_id": entry.backup_id,
                "complete": entry.complete, "location": store.describe(f"backups/{entry.database}/{entry.backup_id}/"),
                "partition_key": m.partition_key if m else None,
                "stored_size_bytes": m.stored_size_bytes if m else sum(o.size for o in entry.objects),
                "source_size_bytes": m.source_size_bytes if m else None,
                "rows": m.total_rows if m else None, "encrypted": bool(m and m.encryption),
                "sha256_stored": m.sha256_stored if m else None,
            })
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    if not rows:
        print("no backups")
        return 0
    print(f"{'region':<14} {'database':<12} {'backup_id':<20} {'state':<10} {'stored':>10} {'rows':>10}  location")
    for r in rows:
        state = "complete" if r["complete"] else "INCOMPLETE"
        rows_shown = r["rows"] if r["rows"] is not None else "-"
        print(f"{r['region']:<14} {r['database']:<12} {r['backup_id']:<20} {state:<10} "
              f"{r['stored_size_bytes'] / 2**20:>9.1f}M {rows_shown:>10}  {r['location']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops_project", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="configuration file (default: $OPS_CONFIG or ops.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo-db", help="generate a demo booking SQLite database")
    demo.add_argument("--path", required=True)
    demo.add_argument("--size-mb", type=float, default=8)
    demo.add_argument("--seed", type=int, default=42)
    demo.set_defaults(func=_cmd_demo_db)

    backups = sub.add_parser("backups", help="take and list backups without Dagster")
    bsub = backups.add_subparsers(dest="action", required=True)
    take = bsub.add_parser("take", help="snapshot now into the primary region, then replicate everywhere")
    take.add_argument("--database", required=True)
    take.add_argument("--quiet", action="store_true")
    take.set_defaults(func=_cmd_take)
    lst = bsub.add_parser("list", help="list backups per region")
    lst.add_argument("--database")
    lst.add_argument("--region")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_cmd_list)
    for p in (take, lst):
        p.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: nothing was marked complete", file=sys.stderr)
        return 130
