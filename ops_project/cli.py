"""``python -m ops_project``: the tools on-call needs when Dagster itself is down.

Uses the same domain code as the assets and never imports Dagster, so it starts fast.
Exit codes: 0 success; 1 an operation failed (message on stderr); 2 bad usage;
3 verification failed: the backup cannot be trusted; 4 no such backup.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ops_project.errors import IntegrityError, OpsError

EXIT_FAILED, EXIT_USAGE, EXIT_UNTRUSTED, EXIT_NO_BACKUP = 1, 2, 3, 4


class _ProgressBar:
    """A one-line progress display on stderr (only when stderr is a terminal, or when forced)."""

    def __init__(self, label: str, enabled: bool):
        import time

        self._label, self._enabled, self._time = label, enabled, time.monotonic
        self._start = self._last = self._time()
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        now = self._time()
        if not self._enabled or self._shown == done or (now - self._last < 0.5 and done < total):
            return
        self._last, self._shown = now, done
        rate = done / max(now - self._start, 1e-6) / 2**20
        pct = f" {100 * done / total:5.1f}%" if total else ""
        print(f"\r{self._label}: {done / 2**20:9.1f} / {total / 2**20:.1f} MiB{pct}  {rate:6.1f} MiB/s",
              end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._enabled:
            print(file=sys.stderr)


def _identities(cfg, path: str | None) -> list | None:
    from pathlib import Path

    from ops_project.restore import parse_identities
    from ops_project.runtime import identities_for

    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise OpsError(f"cannot read the age identity file {path}: {exc.strerror}") from None
        return parse_identities(text, source=f"identity file {path}")
    return identities_for(cfg)


def _locate(args: argparse.Namespace):
    """(config, database config, store, manifest) for --database/--backup-id/--region."""
    from ops_project.config import load_config
    from ops_project.runtime import store_for

    cfg = load_config(args.config)
    db = cfg.database(args.database)
    region = cfg.region(args.region) if args.region else cfg.restore_region
    store = store_for(cfg, region)
    from ops_project.restore import find_backup

    entry = find_backup(store, db.name, args.backup_id)
    return cfg, db, store, entry.manifest


def _cmd_demo_db(args: argparse.Namespace) -> int:
    from ops_project.demo.database import generate

    path = generate(args.path, args.size_mb, seed=args.seed)
    print(f"demo database written to {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


def _cmd_demo_api(args: argparse.Namespace) -> int:
    from ops_project.demo.api import serve

    db = args.db
    if not db:
        from ops_project.config import load_config
        from ops_project.runtime import prepare_database

        cfg = load_config(args.config)
        demo = next((d for d in cfg.databases if d.engine == "sqlite"), None)
        if demo is None:
            raise OpsError(f"{cfg.source}: no SQLite database to serve; pass --db PATH")
        prepare_database(demo)
        db = demo.path
    print(f"demo booking API {args.version} on http://{args.host}:{args.port} (database {db})", file=sys.stderr)
    serve(db, args.version, args.port, host=args.host, latency_ms=args.latency_ms)
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
                "complete": entry.complete, "verified": entry.verified, "problem": entry.problem,
                "location": store.describe(f"backups/{entry.database}/{entry.backup_id}/"),
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
        state = ("verified" if r["verified"] else "complete") if r["complete"] else \
            ("UNREADABLE" if r["problem"] else "INCOMPLETE")
        rows_shown = r["rows"] if r["rows"] is not None else "-"
        print(f"{r['region']:<14} {r['database']:<12} {r['backup_id']:<20} {state:<10} "
              f"{r['stored_size_bytes'] / 2**20:>9.1f}M {rows_shown:>10}  {r['location']}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from ops_project.runtime import scratch_server_for
    from ops_project.verify import record, verify

    cfg, db, store, manifest = _locate(args)
    bar = _ProgressBar(f"verifying {manifest.backup_id}", args.progress or sys.stderr.isatty())
    try:
        report = verify(store, db, manifest, rto_minutes=cfg.objectives.rto_minutes,
                        identities=_identities(cfg, args.identity), scratch_dir=cfg.restore.scratch_dir,
                        pg_server_url=scratch_server_for(cfg, db), progress=bar)
    finally:
        bar.close()
    if not args.no_record:
        record(store, report)
    if args.json:
        print(report.record().decode(), end="")
    else:
        print(report.markdown())
    if report.passed:
        return 0
    return EXIT_UNTRUSTED if report.conclusive else EXIT_FAILED


def _cmd_restore(args: argparse.Namespace) -> int:
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from ops_project.restore import fetch

    cfg, db, store, manifest = _locate(args)
    bar = _ProgressBar(f"restoring {manifest.backup_id}", args.progress or sys.stderr.isatty())
    identities = _identities(cfg, args.identity)
    target = args.to
    if manifest.engine == "sqlite":
        dest = Path(target).expanduser().resolve()
        if dest.exists() and not args.force:
            raise OpsError(f"{dest} already exists: choose another path, or --force to replace it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Restore next to the target, then rename: PATH never holds a half-restored database.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.restoring-", dir=dest.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            fetched = fetch(store, manifest, tmp, identities=identities, progress=bar)
            for sidecar in ("-wal", "-shm", "-journal"):  # stale sidecars would be replayed onto the restore
                Path(f"{dest}{sidecar}").unlink(missing_ok=True)
            os.replace(tmp, dest)
        finally:
            bar.close()
            tmp.unlink(missing_ok=True)
        print(f"restored {db.name} backup {manifest.backup_id} from {fetched.object_url} to {dest} "
              f"({fetched.plaintext_size} bytes, sha256 verified)")
        return 0
    import psycopg

    from ops_project.databases.postgres import _redact, parse_url
    from ops_project.restore import restore_postgres

    info = parse_url(target, what="--to")
    name = info.get("dbname")
    if not name:
        raise OpsError("--to for a PostgreSQL backup must be a URL naming the database to restore into")
    admin = psycopg.conninfo.make_conninfo(**{**info, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True) as con:
        exists = con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            con.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    if exists:
        with psycopg.connect(target) as con:
            used = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN "
                               "('pg_catalog', 'information_schema')").fetchone()[0]
        if used and not args.force:
            raise OpsError(f"database {_redact(target)} already holds {used} tables: restore into a new database")
    work = Path(tempfile.mkdtemp(prefix="ops-restore-", dir=cfg.restore.scratch_dir))
    try:
        fetched = fetch(store, manifest, work / "restore.pgdump", identities=identities, progress=bar)
        bar.close()
        seconds = restore_postgres(fetched.plaintext, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"restored {db.name} backup {manifest.backup_id} from {fetched.object_url} into {_redact(target)} "
          f"(pg_restore {seconds:.1f}s, sha256 verified)")
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

    api = sub.add_parser("demo-api", help="serve the demo booking API (what deploy validation checks)")
    api.add_argument("--port", type=int, default=8080)
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--version", required=True, help="the release this instance serves, e.g. v1.4.2")
    api.add_argument("--db", help="SQLite database (default: the configured demo database)")
    api.add_argument("--latency-ms", type=int, default=0, help="add this delay to every request (chaos)")
    api.set_defaults(func=_cmd_demo_api)

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
    ver = bsub.add_parser("verify", help="restore a backup into scratch and prove it whole (exit 3 if not)")
    res = bsub.add_parser("restore", help="restore a backup into a file (SQLite) or a database URL (PostgreSQL)")
    for p in (ver, res):
        p.add_argument("--database", required=True)
        p.add_argument("--backup-id", default="latest", help="a backup id, or 'latest' (default)")
        p.add_argument("--region", help="region to read from (default: restore.region, else the last region)")
        p.add_argument("--identity", help="age identity file for encrypted backups "
                                          "(default: the variable restore.age_identity_env names)")
        p.add_argument("--progress", action="store_true", help="show progress even when stderr is not a terminal")
    ver.add_argument("--json", action="store_true")
    ver.add_argument("--no-record", action="store_true", help="do not store the verdict next to the backup")
    ver.set_defaults(func=_cmd_verify)
    res.add_argument("--to", required=True, help="SQLite: a file path; PostgreSQL: postgresql://user@host/dbname "
                                                 "(give the password through PGPASSWORD or ~/.pgpass, not here)")
    res.add_argument("--force", action="store_true",
                     help="replace an existing file / restore into a non-empty database")
    res.set_defaults(func=_cmd_restore)
    for p in (take, lst, ver, res, api):
        p.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ops_project.restore import NoBackupError

    try:
        return args.func(args)
    except NoBackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_BACKUP
    except IntegrityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNTRUSTED
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: nothing was marked complete", file=sys.stderr)
        return 130
