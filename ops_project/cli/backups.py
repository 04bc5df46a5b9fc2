"""``backups take|list|verify|restore``: the backup tools on-call needs when Dagster itself is down."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from ops_project.cli import exits
from ops_project.cli.parsing import command, group
from ops_project.cli.progress import ProgressBar
from ops_project.common.errors import OpsError, UnknownNameError


def _clients(args: argparse.Namespace):
    from ops_project.clients import Clients
    from ops_project.config import load_config

    return Clients(load_config(args.config))


def _identities(clients, path: str | None) -> list | None:
    from ops_project.backups.encryption import parse_identities

    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise OpsError(f"cannot read the age identity file {path}: {exc.strerror}") from None
        return parse_identities(text, source=f"identity file {path}")
    return clients.identities()


def _locate(args: argparse.Namespace):
    """(clients, database config, store, manifest) for --database/--backup-id/--region."""
    from ops_project.backups.restore import find_backup

    clients = _clients(args)
    cfg = clients.cfg
    db = cfg.database(args.database)
    store = clients.store(cfg.region(args.region) if args.region else cfg.restore_region)
    entry = find_backup(store, db.name, args.backup_id)
    return clients, db, store, entry.manifest


def cmd_take(args: argparse.Namespace) -> int:
    from ops_project.backups.layout import backup_prefix
    from ops_project.backups.replicate import replicate
    from ops_project.backups.take import take_backup

    clients = _clients(args)
    cfg = clients.cfg
    db = cfg.database(args.database)
    pg_url = clients.database_url(db)
    recipients = clients.recipients()
    primary = clients.store(cfg.primary)
    log = (lambda m: print(m, file=sys.stderr)) if not args.quiet else (lambda m: None)
    manifest = take_backup(db, primary, cfg.backup, pg_url=pg_url, recipients=recipients, log=log)
    print(f"backup {manifest.backup_id} of {db.name}: {primary.describe(backup_prefix(db.name, manifest.backup_id))}")
    for region in cfg.secondaries:
        result = replicate(primary, clients.store(region), db.name, manifest.backup_id)
        print(f"  replicated to {region.name}: {result.bytes} bytes, verified, lag {result.lag_seconds:.1f}s")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from ops_project.backups.catalog import list_backups
    from ops_project.backups.layout import backup_prefix

    clients = _clients(args)
    cfg = clients.cfg
    if args.database:
        cfg.database(args.database)
    regions = [cfg.region(args.region)] if args.region else cfg.regions
    rows = []
    for region in regions:
        store = clients.store(region)
        for entry in list_backups(store, args.database):
            m = entry.manifest
            rows.append({
                "region": region.name, "database": entry.database, "backup_id": entry.backup_id,
                "complete": entry.complete, "verified": entry.verified, "problem": entry.problem,
                "failed_verification": entry.failed_verification,
                "location": store.describe(backup_prefix(entry.database, entry.backup_id)),
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
        state = ("verified" if r["verified"] else "UNTRUSTED" if r["failed_verification"] else "complete") \
            if r["complete"] else ("UNREADABLE" if r["problem"] else "INCOMPLETE")
        rows_shown = r["rows"] if r["rows"] is not None else "-"
        print(f"{r['region']:<14} {r['database']:<12} {r['backup_id']:<20} {state:<10} "
              f"{r['stored_size_bytes'] / 2**20:>9.1f}M {rows_shown:>10}  {r['location']}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from ops_project.backups.verify import record, verify

    clients, db, store, manifest = _locate(args)
    cfg = clients.cfg
    bar = ProgressBar(f"verifying {manifest.backup_id}", args.progress or sys.stderr.isatty())
    try:
        report = verify(store, db, manifest, rto_minutes=cfg.objectives.rto_minutes,
                        identities=_identities(clients, args.identity), scratch_dir=cfg.restore.scratch_dir,
                        pg_server_url=clients.scratch_server(db), progress=bar)
    finally:
        bar.close()
    if args.json:  # the report first: it is printed even when the verdict cannot be recorded
        print(report.record().decode(), end="", flush=True)
    else:
        print(report.markdown(), flush=True)
    code = exits.OK if report.passed else exits.UNTRUSTED if report.conclusive else exits.FAILED
    if not args.no_record:
        try:
            record(store, report)
        except OpsError as exc:
            print(f"error: the verdict could not be recorded next to the backup: {exc}", file=sys.stderr)
            return exits.FAILED if code == exits.OK else code
    return code


def cmd_replicate(args: argparse.Namespace) -> int:
    """Copy a backup that missed a region (a region was down during the run) and verify it there."""
    from ops_project.backups.replicate import replicate
    from ops_project.backups.restore import find_backup

    clients = _clients(args)
    cfg = clients.cfg
    db = cfg.database(args.database)
    if not cfg.secondaries:
        raise OpsError(f"{cfg.source}: only one region is configured: there is nowhere to replicate to")
    targets = [cfg.region(args.region)] if args.region else cfg.secondaries
    if cfg.primary in targets:
        raise OpsError(f"region {cfg.primary.name} is the primary: replicas go to the other regions")
    primary = clients.store(cfg.primary)
    entry = find_backup(primary, db.name, args.backup_id)
    for region in targets:
        result = replicate(primary, clients.store(region), db.name, entry.backup_id)
        what = ("repaired (the replica did not match)" if result.repaired else "copied") if result.copied else \
            "already there, re-verified"
        print(f"{db.name} {entry.backup_id} → {region.name}: {what}, {result.bytes} bytes, sha256 verified")
    return exits.OK


def _moment(text: str) -> datetime | None:
    """``--at``: a moment with its offset, or ``latest`` (None: as far as the continuous copy reaches)."""
    if text.strip().lower() == "latest":
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UnknownNameError(f"--at {text!r} is not a moment: use ISO 8601 with its offset, e.g. "
                               f"2026-11-22T10:42:00Z") from None
    if at.tzinfo is None:
        raise UnknownNameError(f"--at {text!r} has no time zone: add Z for UTC or an offset "
                               f"(2026-11-22T12:42:00+02:00), so that nobody restores to the wrong hour")
    if at > datetime.now(UTC):
        raise UnknownNameError(f"--at {text} is in the future")
    return at


def cmd_restore_at(args: argparse.Namespace) -> int:
    """``backups restore --at``: the continuous replica (Litestream) as it was at a moment."""
    from ops_project.continuous.litestream import restore

    at = _moment(args.at)
    if args.backup_id != "latest":
        raise UnknownNameError("give --at (a moment, from the continuous replica) or --backup-id (a snapshot), "
                               "not both")
    cfg = _clients(args).cfg
    db = cfg.database(args.database)
    if db.engine == "postgres":
        return _restore_postgres_at(cfg, db, at, args)
    from ops_project.continuous.pitr import integrity

    done = restore(cfg, db, Path(args.to), at=at, region=args.region, force=args.force)
    found = integrity(done.path)
    moment = f"at {at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}" if at else "at its newest position (latest)"
    if found != "ok":
        print(f"error: restored {db.name} as {moment} from {done.region} to {done.path}, but it FAILED "
              f"PRAGMA integrity_check ({found}): do not use it; try another region (--region)", file=sys.stderr)
        return exits.UNTRUSTED
    print(f"restored {db.name} as it was {moment} from the continuous replica in {done.region} to {done.path} "
          f"({done.seconds:.1f}s, PRAGMA integrity_check ok)")
    return exits.OK


def _restore_postgres_at(cfg, db, at: datetime | None, args: argparse.Namespace) -> int:
    """The cluster recovered from its pgBackRest archive to ``at`` in the new data directory ``--to``, started on a
    socket of its own to prove it whole, then stopped and left there for on-call to start."""
    import psycopg

    from ops_project.continuous.pgbackrest import recovered, settings
    from ops_project.continuous.pitr import Check, whole_pg

    pg = settings(cfg, db.name)
    moment = f"at {at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}" if at else "at its newest position (latest)"
    with recovered(cfg, db, Path(args.to), at=at, region=args.region) as done:
        checks = []
        try:
            with psycopg.connect(done.conninfo, autocommit=True) as con:
                names = [n for (n,) in con.execute("SELECT datname FROM pg_database WHERE datallowconn "
                                                   "AND NOT datistemplate ORDER BY 1")]
            for name in names:  # every database of the cluster (the live URL is not needed in an emergency)
                with psycopg.connect(f"{done.conninfo} dbname={name}", autocommit=True) as con:
                    checks.append((name, whole_pg(con)[0]))
        except psycopg.Error as exc:
            checks.append(("the cluster", Check("integrity", False, f"cannot be read: {exc}")))
    bad = [f"{name}: {c.text}" for name, c in checks if not c.passed]
    whole = Check("integrity", not bad, "; ".join(bad) or
                  f"{len(checks)} database(s), every table read to the end")
    if not whole.passed:
        print(f"error: recovered {db.name} as {moment} from {done.region} into {done.data}, but {whole.text}: do "
              f"not use it; try another region (--region)", file=sys.stderr)
        return exits.UNTRUSTED
    print(f"recovered {db.name}'s cluster as it was {moment} from the WAL archive in {done.region} into "
          f"{done.data} ({done.seconds:.1f}s; {whole.text}). Archiving is off in it. Start it with: "
          f"runuser -u {pg.os_user} -- {_pg_ctl_hint(done.data)} -D {done.data} -o '-p PORT' start")
    return exits.OK


def _pg_ctl_hint(data: Path) -> str:
    version = (data / "PG_VERSION").read_text().strip() if (data / "PG_VERSION").is_file() else "VERSION"
    return f"/usr/lib/postgresql/{version}/bin/pg_ctl"


def cmd_restore(args: argparse.Namespace) -> int:
    from ops_project.backups.engines.postgres import redact_url
    from ops_project.backups.restore import restore_to_database, restore_to_file

    if args.at:
        return cmd_restore_at(args)
    clients, db, store, manifest = _locate(args)
    bar = ProgressBar(f"restoring {manifest.backup_id}", args.progress or sys.stderr.isatty())
    identities = _identities(clients, args.identity)
    try:
        if manifest.engine == "sqlite":
            fetched, dest = restore_to_file(store, manifest, args.to, identities=identities, force=args.force,
                                            progress=bar)
        else:
            fetched, seconds = restore_to_database(store, manifest, args.to, identities=identities,
                                                   keep_privileges=not args.no_privileges,
                                                   scratch_dir=clients.cfg.restore.scratch_dir, progress=bar)
    finally:
        bar.close()
    if manifest.engine == "sqlite":
        print(f"restored {db.name} backup {manifest.backup_id} from {fetched.object_url} to {dest} "
              f"({fetched.plaintext_size} bytes, sha256 verified)")
    else:
        print(f"restored {db.name} backup {manifest.backup_id} from {fetched.object_url} into "
              f"{redact_url(args.to)} (pg_restore {seconds:.1f}s, sha256 verified)")
    return 0


def add_parsers(sub) -> list[argparse.ArgumentParser]:
    bsub = group(sub, "backups", "take, list, verify, restore and replicate backups without Dagster")
    take = command(bsub, "take", "snapshot a database now into the primary region, then replicate everywhere",
                   "An ad-hoc backup outside the backup windows (it belongs to no window). Prints where it went.")
    take.add_argument("--database", required=True, help="the configured database to back up")
    take.add_argument("--quiet", action="store_true", help="print only the result, not each step")
    take.set_defaults(func=cmd_take)
    lst = command(bsub, "list", "list backups per region",
                  "States: verified (passed a restore test), complete, UNTRUSTED (failed a restore test),\n"
                  "INCOMPLETE (no manifest: never restorable), UNREADABLE (a manifest that cannot be read).")
    lst.add_argument("--database", help="only this configured database (default: all)")
    lst.add_argument("--region", help="only this configured region (default: all)")
    lst.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
    lst.set_defaults(func=cmd_list)
    ver = command(bsub, "verify", "restore a backup into scratch and prove it whole",
                  "Checks the stored and plaintext sha256, the engine's integrity check, schema, row counts,\n"
                  "content checksums and the booking invariants against the manifest. Exit 3 if it fails.")
    res = command(bsub, "restore", "restore a backup into a file (SQLite) or a database URL (PostgreSQL)",
                  "The backup is verified against its manifest on the way; a SQLite target is written beside\n"
                  "and moved into place only when whole.")
    for p in (ver, res):
        p.add_argument("--database", required=True, help="the configured database whose backup to use")
        p.add_argument("--backup-id", default="latest", help="a backup id (see `backups list`), or latest")
        p.add_argument("--region", help="region to read from (default: restore.region, else the last region)")
        p.add_argument("--identity", help="age identity file for encrypted backups "
                                          "(default: the variable restore.age_identity_env names)")
        p.add_argument("--progress", action="store_true", help="show progress even when stderr is not a terminal")
    ver.add_argument("--json", action="store_true", help="print the report as JSON")
    ver.add_argument("--no-record", action="store_true", help="do not store the verdict next to the backup")
    ver.set_defaults(func=cmd_verify)
    res.add_argument("--to", required=True, help="SQLite: a file path; PostgreSQL: postgresql://user@host/dbname "
                                                 "(give the password through PGPASSWORD or ~/.pgpass, not here); "
                                                 "PostgreSQL with --at: a new directory for the recovered cluster")
    res.add_argument("--force", action="store_true", help="SQLite: replace an existing database file")
    res.add_argument("--at", help="restore as the database was at this moment (ISO 8601 with offset, e.g. "
                                  "2026-11-22T10:42:00Z), or `latest` for as far as the copy reaches: SQLite from its "
                                  "Litestream replica, PostgreSQL from its pgBackRest archive (the whole cluster, on "
                                  "the database host)")
    res.add_argument("--no-privileges", action="store_true",
                     help="PostgreSQL: drop owners and grants (when the roles do not exist where you restore)")
    res.set_defaults(func=cmd_restore)
    rep = command(bsub, "replicate", "copy a backup from the primary region to the others and verify it there",
                  "The copy is re-read at the destination (sha256) before its manifest is written.")
    rep.add_argument("--database", required=True, help="the configured database whose backup to copy")
    rep.add_argument("--backup-id", default="latest", help="a backup id (see `backups list`), or latest")
    rep.add_argument("--region", help="only this secondary region (default: every secondary region)")
    rep.set_defaults(func=cmd_replicate)
    return [take, lst, ver, res, rep]
