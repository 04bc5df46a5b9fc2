"""Disaster-recovery drills: rehearse a disaster against what the configuration describes.

Scenarios:
  region_loss     the primary region is gone: restore from a secondary region.
  corrupt_latest  the newest backup is corrupt: verification must catch it, and the drill falls
                  back to the previous good backup; the achieved RPO shows the loss.
  database_loss   the live database is gone: restore into a fresh location and run the read
                  queries the application depends on.
  point_in_time   the live database is gone now (continuously protected SQLite databases): restore
                  its Litestream replica from a surviving region to the newest moment it holds, prove
                  it with the marker rows, and run the application's read queries; the achieved RPO
                  is how far before the disaster the newest restored change is, in minutes.

A drill never touches the live database or the primary region: it reads secondary regions,
works on copies in scratch space, and writes only its report, under ``drills/`` in the DR region.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from ops_project.backups.catalog import BackupEntry, complete_backups
from ops_project.backups.engines import postgres as postgres_engine
from ops_project.backups.engines import sqlite as sqlite_engine
from ops_project.backups.layout import backup_prefix
from ops_project.backups.restore import fetch, restore_postgres
from ops_project.backups.scratch import scratch_database, scratch_directory
from ops_project.backups.verify import verify
from ops_project.common import fleet
from ops_project.common.checks import failure_summary
from ops_project.common.config import DatabaseConfig
from ops_project.common.errors import OpsError
from ops_project.common.markdown import table
from ops_project.common.streams import copy
from ops_project.config import OpsConfig
from ops_project.storage import ObjectStore
from ops_project.storage.local import LocalStore

SCENARIOS = ("region_loss", "corrupt_latest", "database_loss", "point_in_time")

# Read queries the booking application depends on (run only where their tables exist).
APP_QUERIES = [
    ("list a tenant's services", {"services"},
     "SELECT id, name, duration_min, price_cents FROM services "
     "WHERE tenant_id = (SELECT min(tenant_id) FROM services)"),
    ("a staff member's day", {"appointments", "staff"},
     "SELECT id, starts_at, ends_at, status FROM appointments WHERE staff_id = (SELECT min(staff_id) FROM "
     "appointments) ORDER BY starts_at LIMIT 50"),
    ("find a customer by email", {"customers"},
     "SELECT id, email FROM customers WHERE email = (SELECT min(email) FROM customers)"),
    ("a tenant's takings", {"payments", "appointments"},
     "SELECT a.tenant_id, sum(p.amount_cents) FROM payments p JOIN appointments a ON a.id = p.appointment_id "
     "WHERE p.status = 'paid' GROUP BY a.tenant_id ORDER BY 2 DESC LIMIT 5"),
]


@dataclass
class ScenarioResult:
    scenario: str
    database: str
    passed: bool
    region: str | None = None
    backup_id: str | None = None
    rto_seconds: float | None = None
    rpo_minutes: float | None = None
    notes: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ScenarioSummary:
    scenario: str
    passed: bool
    worst_rto_seconds: float | None  # None: nothing was restored, so there is no RTO (never a 0 s one)
    worst_rpo_minutes: float | None
    description: str


@dataclass
class DrillReport:
    drill_id: str
    started_at: str
    rto_objective_seconds: float
    rpo_objective_minutes: float
    results: list[ScenarioResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def markdown(self) -> str:
        """A narrow table (one line per scenario and database) and the notes below it, each said once: the
        table fits the page however long an error is."""
        rows, notes = [], {}
        for r in self.results:
            rto = f"{r.rto_seconds:.1f} s" if r.rto_seconds is not None else "-"
            rpo = f"{r.rpo_minutes:.1f} min" if r.rpo_minutes is not None else "-"
            text = "; ".join(r.notes)
            ref = notes.setdefault(text, len(notes) + 1) if text else None
            rows.append((r.scenario, r.database, r.region or "-", r.backup_id or "-", rto, rpo,
                         "pass" if r.passed else "FAIL", f"[{ref}]" if ref else "-"))
        return "\n".join([
            f"## DR drill {self.drill_id}: {'PASSED' if self.passed else 'FAILED'}", "",
            f"Started {self.started_at}. Objectives: RTO {self.rto_objective_seconds / 60:.0f} min, "
            f"RPO {self.rpo_objective_minutes:.0f} min.", "",
            table(["scenario", "database", "restored from", "backup", "RTO achieved", "RPO achieved", "result",
                   "note"], rows), "",
            *(f"{n}. {text}" for text, n in notes.items())])

    def summary(self, scenario: str) -> ScenarioSummary:
        """One scenario across every database: passed only if it passed for all; the worst RTO and RPO."""
        results = [r for r in self.results if r.scenario == scenario]
        return ScenarioSummary(
            scenario=scenario,
            passed=bool(results) and all(r.passed for r in results),
            worst_rto_seconds=max((r.rto_seconds for r in results if r.rto_seconds is not None), default=None),
            worst_rpo_minutes=max((r.rpo_minutes for r in results if r.rpo_minutes is not None), default=None),
            description="; ".join(f"{r.database}: {'pass' if r.passed else 'FAIL'} ({', '.join(r.notes)})"
                                  for r in results) or "no database was drilled",
        )

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self) | {"passed": self.passed}, indent=2) + "\n").encode()


@dataclass
class DrillContext:
    cfg: OpsConfig
    stores: dict[str, ObjectStore]  # every region but the primary
    identities: list | None = None
    pg_server_url: Callable[[DatabaseConfig], str | None] = lambda _db: None
    database_url: Callable[[DatabaseConfig], str | None] = lambda _db: None  # a live PostgreSQL database's URL
    scratch_dir: Path | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def _age_minutes(ctx: DrillContext, entry: BackupEntry) -> float:
    return entry.age_minutes(ctx.now(), digits=2)


def _judge(ctx: DrillContext, result: ScenarioResult, ok: bool) -> ScenarioResult:
    rto_ok = result.rto_seconds is not None and result.rto_seconds <= ctx.cfg.objectives.rto_minutes * 60
    rpo_ok = result.rpo_minutes is not None and result.rpo_minutes <= ctx.cfg.objectives.rpo_minutes
    if result.rto_seconds is not None and not rto_ok:
        result.notes.append("RTO objective missed")
    if result.rpo_minutes is not None and not rpo_ok:
        result.notes.append("RPO objective missed")
    result.passed = ok and rto_ok and rpo_ok
    return result


def _surviving(ctx: DrillContext, db: DatabaseConfig) -> tuple[ObjectStore, list[BackupEntry]] | None:
    """The surviving region with the newest complete backup (the DR region first on ties)."""
    best = None
    order = [ctx.cfg.restore_region.name, *(n for n in ctx.stores if n != ctx.cfg.restore_region.name)]
    for name in order:
        if name not in ctx.stores:
            continue
        entries = complete_backups(ctx.stores[name], db.name)
        if entries and (best is None or entries[-1].backup_id > best[1][-1].backup_id):
            best = (ctx.stores[name], entries)
    return best


def _newest_surviving(ctx: DrillContext, db: DatabaseConfig,
                      result: ScenarioResult) -> tuple[ObjectStore, BackupEntry] | None:
    """The newest backup a secondary region still holds, noted on ``result``; None (and why) if there is none."""
    found = _surviving(ctx, db)
    if found is None:
        result.notes.append("no complete backup in any secondary region")
        return None
    store, entries = found
    result.region, result.backup_id = store.region, entries[-1].backup_id
    return store, entries[-1]


def region_loss(ctx: DrillContext, db: DatabaseConfig) -> ScenarioResult:
    result = ScenarioResult("region_loss", db.name, False)
    if not ctx.stores:
        result.notes.append("no secondary region is configured: losing the primary loses every backup")
        return result
    found = _newest_surviving(ctx, db, result)
    if found is None:
        return result
    store, entry = found
    report = verify(store, db, entry.manifest, rto_minutes=ctx.cfg.objectives.rto_minutes, identities=ctx.identities,
                    scratch_dir=ctx.scratch_dir, pg_server_url=ctx.pg_server_url(db))
    result.rto_seconds, result.rpo_minutes = round(report.timings.total, 3), _age_minutes(ctx, entry)
    result.phases = {"download": report.timings.download, "decode": report.timings.decode,
                     "restore": report.timings.restore, "checks": report.timings.checks}
    result.notes.append("restored and verified" if report.passed else
                        "verification failed: " + failure_summary(report.failures))
    return _judge(ctx, result, report.passed)


def corrupt_latest(ctx: DrillContext, db: DatabaseConfig) -> ScenarioResult:
    result = ScenarioResult("corrupt_latest", db.name, False)
    found = _surviving(ctx, db)
    if found is None or len(found[1]) < 2:
        result.notes.append("needs at least two complete backups in a secondary region")
        return result
    source, entries = found
    newest, previous = entries[-1], entries[-2]
    with scratch_directory("drill", ctx.scratch_dir) as tmp:
        # Copies, never the originals: the newest one is then corrupted on purpose.
        scratch = LocalStore(f"drill-copy-of-{source.region}", Path(tmp) / "region", create=True)
        for entry in (previous, newest):
            for key in entry.keys:
                with source.reader(key) as fh:
                    writer = scratch.writer(key)
                    copy(fh, writer)
                    writer.commit()
        data = Path(scratch.describe(backup_prefix(db.name, newest.backup_id) + newest.manifest.data_object))
        with open(data, "r+b") as fh:  # flip one byte in the middle, without reading the whole object
            middle = data.stat().st_size // 2
            fh.seek(middle)
            byte = fh.read(1)
            fh.seek(middle)
            fh.write(bytes([byte[0] ^ 0xFF]))
        t = time.perf_counter()
        chosen = None
        for entry in sorted(complete_backups(scratch, db.name), key=lambda e: e.backup_id, reverse=True):
            report = verify(scratch, db, entry.manifest, rto_minutes=ctx.cfg.objectives.rto_minutes,
                            identities=ctx.identities, scratch_dir=ctx.scratch_dir, pg_server_url=ctx.pg_server_url(db))
            if report.passed:
                chosen = entry
                break
            result.notes.append(f"{entry.backup_id} rejected ({', '.join(c.name for c in report.failures)})")
        elapsed = time.perf_counter() - t
    detected = any(newest.backup_id in n for n in result.notes)
    if not detected:
        result.notes.append(f"the corrupted backup {newest.backup_id} was NOT detected")
    if chosen is None:
        result.notes.append("no good backup to fall back to")
        return result
    result.region, result.backup_id = source.region, chosen.backup_id
    result.rto_seconds, result.rpo_minutes = round(elapsed, 3), _age_minutes(ctx, chosen)
    result.notes.append(f"fell back to {chosen.backup_id}; the loss is the data after it")
    return _judge(ctx, result, detected and chosen.backup_id == previous.backup_id)


def _run_queries(query: Callable[[str], list], tables: set[str]) -> list[str]:
    notes, ran = [], 0
    for name, needs, sql in APP_QUERIES:
        if not needs <= tables:
            continue
        try:
            rows = query(sql)
        except (sqlite3.Error, psycopg.Error) as exc:
            raise OpsError(f"application query '{name}' failed on the restored database: {exc}") from None
        ran += 1
        if not rows:
            raise OpsError(f"application query '{name}' returned nothing on the restored database")
        notes.append(f"{name}: {len(rows)} rows")
    if not ran:  # not a booking schema: every table must at least be readable
        for table in sorted(tables):
            query(f'SELECT count(*) FROM "{table}"')
        notes.append(f"{len(tables)} tables readable")
    return notes


def database_loss(ctx: DrillContext, db: DatabaseConfig) -> ScenarioResult:
    result = ScenarioResult("database_loss", db.name, False)
    found = _newest_surviving(ctx, db, result)
    if found is None:
        return result
    store, entry = found
    t = time.perf_counter()
    try:
        with scratch_directory("drill", ctx.scratch_dir) as tmp:
            dest = Path(tmp) / ("fresh.sqlite" if db.engine == "sqlite" else "fresh.pgdump")
            fetched = fetch(store, entry.manifest, dest, identities=ctx.identities)
            if db.engine == "sqlite":
                con = sqlite3.connect(dest)
                try:
                    tables, _columns = sqlite_engine.tables_and_columns(con)
                    result.notes += _run_queries(lambda q: con.execute(q).fetchall(), tables)
                finally:
                    con.close()
            else:
                result.notes += _restore_and_query_postgres(ctx, db, fetched.plaintext,
                                                            entry.manifest.database_encoding)
    except OpsError as exc:
        result.notes.append(str(exc))
        return result
    result.rto_seconds, result.rpo_minutes = round(time.perf_counter() - t, 3), _age_minutes(ctx, entry)
    return _judge(ctx, result, True)


def _restore_and_query_postgres(ctx: DrillContext, db: DatabaseConfig, dump: Path,
                                encoding: str | None) -> list[str]:
    server = ctx.pg_server_url(db)
    if not server:
        raise OpsError(f"database {db.name}: no PostgreSQL server to restore into")
    with scratch_database(server, purpose="drill", what=f"the PostgreSQL server for {db.name}",
                          encoding=encoding) as target:
        restore_postgres(dump, target)
        with psycopg.connect(target, autocommit=True) as con:
            tables, _columns = postgres_engine.tables_and_columns(con)
            return _run_queries(lambda q: con.execute(q).fetchall(), tables)


def point_in_time(ctx: DrillContext, db: DatabaseConfig) -> ScenarioResult:
    from ops_project.continuous.litestream import restore  # noqa: PLC0415 - only this scenario needs Litestream
    from ops_project.continuous.markers import read_markers  # noqa: PLC0415
    from ops_project.continuous.pitr import prove  # noqa: PLC0415

    result = ScenarioResult("point_in_time", db.name, False)
    order = [ctx.cfg.restore_region.name, *(n for n in ctx.stores if n != ctx.cfg.restore_region.name)]
    region = next((name for name in order if name in ctx.stores), None)
    if region is None:
        result.notes.append("no secondary region is configured: losing the primary loses the replica too")
        return result
    result.region = region
    if db.engine == "postgres":
        return _point_in_time_pg(ctx, db, result)
    disaster = ctx.now()
    t = time.perf_counter()
    with scratch_directory("drill", ctx.scratch_dir) as tmp:
        done = restore(ctx.cfg, db, Path(tmp) / "fresh.sqlite", region=region)
        c = ctx.cfg.continuous
        proof = prove(done.path, read_markers(Path(db.path)), disaster, slack_seconds=c.sync_interval_seconds + 2.0,
                      database=db.name, region=region, restore_seconds=done.seconds, marker_seconds=c.marker_seconds)
        con = sqlite3.connect(done.path)  # a scratch copy
        try:
            tables, _columns = sqlite_engine.tables_and_columns(con)
            result.notes += _run_queries(lambda q: con.execute(q).fetchall(), tables - {"_ops_markers"})
        finally:
            con.close()
    return _point_in_time_verdict(ctx, result, proof, time.perf_counter() - t,
                                  "restored to {:%H:%M:%SZ}, the newest change the replica held")


def _point_in_time_verdict(ctx: DrillContext, result: ScenarioResult, proof, seconds: float,
                           done: str) -> ScenarioResult:
    """The scenario's achieved RTO and RPO (minutes) and verdict from a restore's proof."""
    result.rto_seconds = round(seconds, 3)
    if proof.gap_seconds is not None:
        result.rpo_minutes = round(max(0.0, proof.gap_seconds) / 60, 2)
    failed = [f"{c.name}: {c.text}" for c in proof.checks if not c.passed]
    result.notes += failed or [done.format(proof.newest_restored)]
    return _judge(ctx, result, not failed)


def _point_in_time_pg(ctx: DrillContext, db: DatabaseConfig, result: ScenarioResult) -> ScenarioResult:
    """The cluster lost now: recovered from the surviving region's WAL archive as far as it reaches, started,
    proven against the live markers, and the application's queries run on it."""
    from ops_project.continuous.markers import live_markers_pg  # noqa: PLC0415
    from ops_project.continuous.pgbackrest import owned_scratch, recovered, settings  # noqa: PLC0415
    from ops_project.continuous.pitr import pg_dbname, pg_slack_seconds, prove_pg  # noqa: PLC0415

    url = ctx.database_url(db)
    if not url:
        result.notes.append(f"the URL of {db.name} is not available to the drill ({db.url_env} unset)")
        return result
    dbname = pg_dbname(ctx.cfg, db.name, url)
    c = ctx.cfg.continuous
    t = time.perf_counter()
    tmp = owned_scratch(ctx.scratch_dir, settings(ctx.cfg, db.name).os_user)
    try:
        with recovered(ctx.cfg, db, tmp / "fresh", region=result.region) as done:
            disaster = ctx.now()  # the archive as it stood when recovery ended: what a real loss now would give
            proof = prove_pg(done, dbname, live_markers_pg(url), disaster,
                             slack_seconds=pg_slack_seconds(ctx.cfg, db.name), marker_seconds=c.marker_seconds)
            with psycopg.connect(f"{done.conninfo} dbname={dbname}", autocommit=True) as con:
                tables, _columns = postgres_engine.tables_and_columns(con)
                result.notes += _run_queries(lambda q: con.execute(q).fetchall(), tables - {"_ops_markers"})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _point_in_time_verdict(ctx, result, proof, time.perf_counter() - t,
                                  "recovered to {:%H:%M:%SZ}, the newest change the archive held")


RUNNERS = {"region_loss": region_loss, "corrupt_latest": corrupt_latest, "database_loss": database_loss,
           "point_in_time": point_in_time}


def run_drill(ctx: DrillContext, drill_id: str, scenarios: list[str] | None = None) -> DrillReport:
    started = ctx.now().isoformat()
    results = []
    protected = {db.name for db in ctx.cfg.continuous_protected}
    for scenario in scenarios or ctx.cfg.drill_scenarios:
        for db in fleet.of(ctx.cfg).databases:  # the declared databases and the tenants found now
            if scenario == "point_in_time" and db.name not in protected:
                continue  # only continuously protected databases have a replica to restore to a moment
            try:
                results.append(RUNNERS[scenario](ctx, db))
            except (OpsError, OSError, sqlite3.Error, psycopg.Error) as exc:  # one scenario's failure, reported
                results.append(ScenarioResult(scenario, db.name, False, notes=[f"{type(exc).__name__}: {exc}"]))
    return DrillReport(drill_id, started, ctx.cfg.objectives.rto_minutes * 60.0, ctx.cfg.objectives.rpo_minutes,
                       results)


def report_region(cfg: OpsConfig) -> str | None:
    """Where drill reports go: the DR region (``restore.region``, default the last) when it is a secondary
    region, else the last secondary region; None when there is no secondary region (never the primary)."""
    survivors = [r.name for r in cfg.secondaries]
    if cfg.restore_region.name in survivors:
        return cfg.restore_region.name
    return survivors[-1] if survivors else None


def store_report(store: ObjectStore, report: DrillReport) -> str:
    """The report goes to the DR region, beside the backups, under drills/<drill id>/."""
    prefix = f"drills/{report.drill_id}/"
    store.put_bytes(prefix + "report.json", report.to_json())
    store.put_bytes(prefix + "report.md", report.markdown().encode())
    return store.describe(prefix + "report.md")
