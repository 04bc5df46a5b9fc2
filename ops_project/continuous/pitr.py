"""Proving a restore to a moment: the restored database is whole, holds every marker written up to the moment
(less the replication delay), and none written after it.

The oracle is the live database's own marker table, read at the time of the test: markers are only ever added
(and pruned long after the replicas' retention), so the restore to T must hold exactly the live markers up to
T, give or take the ``slack`` between a commit and its arrival in the region (``sync_interval_seconds`` plus a
little). A marker restored from after T means the restore went too far; a marker missing from well before T
means changes were lost.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from ops_project.continuous.markers import read_markers, sqlite_uri


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    text: str


@dataclass(frozen=True)
class Proof:
    database: str
    region: str
    target: datetime
    checks: list[Check]
    newest_restored: datetime | None  # the newest marker in the restore
    restored_markers: int
    restore_seconds: float
    extra: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def gap_seconds(self) -> float | None:
        """How far before the moment the restore's newest marker is: the achieved RPO, within one marker."""
        return None if self.newest_restored is None else (self.target - self.newest_restored).total_seconds()


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of a file: "ok", or what SQLite found."""
    try:
        con = sqlite3.connect(sqlite_uri(path, "ro"), uri=True)
        try:
            rows = [r[0] for r in con.execute("PRAGMA integrity_check(20)")]
        finally:
            con.close()
    except sqlite3.Error as exc:
        return f"not a readable SQLite database: {exc}"
    return "ok" if rows == ["ok"] else "; ".join(rows)


def prove(restored: Path, live: list[datetime], target: datetime, *, slack_seconds: float, database: str,
          region: str, restore_seconds: float, marker_seconds: int) -> Proof:
    """The checks of one SQLite restore to ``target`` against the live markers ``live``."""
    found = integrity(restored)
    return judge(Check("integrity", found == "ok", f"PRAGMA integrity_check: {found}"),
                 read_markers(restored) if found == "ok" else [], live, target, slack_seconds=slack_seconds,
                 database=database, region=region, restore_seconds=restore_seconds, marker_seconds=marker_seconds)


def judge(whole: Check, got: list[datetime], live: list[datetime], target: datetime, *, slack_seconds: float,
          database: str, region: str, restore_seconds: float, marker_seconds: int) -> Proof:
    """The checks of one restore to ``target`` (of any engine): ``whole`` says whether the restored database is
    whole, ``got`` are the markers it holds, ``live`` those of the live database."""
    checks = [whole]
    got = got if whole.passed else []
    have = set(got)
    later = [m for m in got if m > target]
    checks.append(Check("nothing_after_the_moment", not later,
                        "no marker written after the moment" if not later else
                        f"{len(later)} marker(s) written after {target.isoformat()} are in the restore, the first "
                        f"at {later[0].isoformat()}: the restore went past the moment asked for"))
    cutoff = target - timedelta(seconds=slack_seconds)
    due = [m for m in live if m <= cutoff]  # each existed at the moment: markers are added, and pruned, never changed
    missing = [m for m in due if m not in have]
    checks.append(Check("everything_before_the_moment", bool(due) and not missing,
                        f"all {len(due)} markers written up to {cutoff.isoformat()} are there" if due and not missing
                        else f"the live database has no marker before {cutoff.isoformat()}: nothing proves this "
                             f"moment" if not due else
                        f"{len(missing)} of {len(due)} markers written before {cutoff.isoformat()} are missing, the "
                        f"first from {missing[0].isoformat()}: changes committed before the moment were lost"))
    newest = max((m for m in got if m <= target), default=None)
    if newest is not None:
        gap = (target - newest).total_seconds()
        limit = marker_seconds + slack_seconds
        checks.append(Check("close_to_the_moment", gap <= limit,
                            f"the newest change restored is {gap:.1f} s before the moment (at most {limit:.0f} s "
                            f"expected: one marker interval plus the replication delay)"))
    return Proof(database, region, target, checks, newest, len(got), restore_seconds)


def pick_moment(rng: random.Random, *, earliest: datetime, now: datetime, lookback_hours: int,
                slack_seconds: float, marker_seconds: int) -> datetime | None:
    """A random moment in the last ``lookback_hours`` that the replica can restore to and the markers can prove
    (None: the replica is too young to hold one yet)."""
    start = max(earliest + timedelta(seconds=marker_seconds + slack_seconds), now - timedelta(hours=lookback_hours))
    end = now - timedelta(seconds=2 * slack_seconds)
    if end <= start:
        return None
    return start + (end - start) * rng.random()


@dataclass(frozen=True)
class TestResult:
    """A database's point-in-time restore test: a restore to a random moment and one to the newest position."""

    database: str
    region: str
    moment: Proof | None  # None: the replica is too young to hold a provable moment yet
    newest: Proof
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.newest.passed and (self.moment is None or self.moment.passed)

    @property
    def verified_to(self) -> datetime | None:
        """The newest moment this test proved restorable (the verified point of the continuous replica)."""
        return self.newest.newest_restored if self.passed else None


def run_test(cfg, db, store, *, rng: random.Random, now: datetime, scratch: Path,
             env=None) -> TestResult:
    """Restore ``db`` from ``store``'s replica to a random moment of the last day and to its newest position,
    each into ``scratch``, and prove both against the live markers. Raises ``RestoreFailed`` (our environment)
    when Litestream cannot restore at all."""
    from ops_project.continuous.litestream import restore
    from ops_project.continuous.replicas import read_replica

    c = cfg.continuous
    slack = c.sync_interval_seconds + 2.0
    replica = read_replica(store, db.name)
    if replica.error is not None:
        from ops_project.continuous.litestream import RestoreFailed

        raise RestoreFailed(f"cannot read the continuous replica of {db.name} in {store.region}: {replica.error}")
    moment, note = None, ""
    target = pick_moment(rng, earliest=replica.oldest_snapshot, now=now, lookback_hours=24, slack_seconds=slack,
                         marker_seconds=c.marker_seconds) if replica.oldest_snapshot else None
    if target is not None:
        done = restore(cfg, db, scratch / f"{db.name}-moment.db", at=target, region=store.region, force=True, env=env)
        moment = prove(done.path, read_markers(Path(db.path)), target, slack_seconds=slack, database=db.name,
                       region=store.region, restore_seconds=done.seconds, marker_seconds=c.marker_seconds)
    else:
        note = "the replica is too young to hold a moment the markers can prove; only its newest position was tested"
    started = datetime.now(tz=now.tzinfo)
    done = restore(cfg, db, scratch / f"{db.name}-newest.db", region=store.region, force=True, env=env)
    newest = prove(done.path, read_markers(Path(db.path)), started, slack_seconds=slack, database=db.name,
                   region=store.region, restore_seconds=done.seconds, marker_seconds=c.marker_seconds)
    return TestResult(db.name, store.region, moment, newest, note)


def whole_pg(con) -> tuple[Check, list[datetime]]:
    """A recovered PostgreSQL database is whole when it left recovery and every table reads to the end."""
    import psycopg

    from ops_project.continuous.markers import read_markers_pg

    try:
        tables = con.execute("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname NOT IN "
                             "('pg_catalog', 'information_schema') ORDER BY 1").fetchall()
        rows = sum(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for (t,) in tables)
        got = read_markers_pg(con)
    except psycopg.Error as exc:
        return Check("integrity", False, f"the recovered database cannot be read: {exc}"), []
    return Check("integrity", True, f"recovered and promoted; {len(tables)} tables read to the end ({rows} rows)"), got


def prove_pg(recovered, dbname: str, live: list[datetime], target: datetime, *, slack_seconds: float,
             marker_seconds: int) -> Proof:
    """The checks of one PostgreSQL restore to ``target``: ``recovered`` is the running restored cluster."""
    import psycopg

    with psycopg.connect(f"{recovered.conninfo} dbname={dbname}", autocommit=True) as con:
        whole, got = whole_pg(con)
    return judge(whole, got, live, target, slack_seconds=slack_seconds, database=recovered.database,
                 region=recovered.region, restore_seconds=recovered.seconds, marker_seconds=marker_seconds)


def pg_dbname(cfg, name: str, url: str) -> str:
    """The database of the cluster that ``name`` is: the one its URL names (default: the role's own)."""
    import psycopg

    from ops_project.continuous.pgbackrest import settings

    return psycopg.conninfo.conninfo_to_dict(url).get("dbname") or settings(cfg, name).db_user


def pg_slack_seconds(cfg, name: str) -> float:
    """How long a commit may take to reach the archive: the server's archive_timeout, and a few seconds for the
    push (pgBackRest compresses and stores a whole 16 MB segment)."""
    return cfg.continuous.postgres[name].archive_timeout_seconds + 5.0


def run_test_pg(cfg, db, url: str, store, *, rng: random.Random, now: datetime, scratch: Path,
                env=None) -> TestResult:
    """As ``run_test``, for a PostgreSQL database archived with pgBackRest: its cluster is recovered twice into
    ``scratch`` (to a random moment since the oldest base backup in the last day, and as far as the archive
    reaches), each started on a socket of its own, proven against the live markers, and stopped."""
    from ops_project.continuous.markers import live_markers_pg
    from ops_project.continuous.pgbackrest import ArchiveFailed, recovered
    from ops_project.continuous.replicas import read_archive

    c = cfg.continuous
    slack = pg_slack_seconds(cfg, db.name)
    archive = read_archive(store, db.name)
    if archive.error is not None:
        raise ArchiveFailed(f"cannot read the WAL archive of {db.name} in {store.region}: {archive.error}")
    dbname = pg_dbname(cfg, db.name, url)
    moment, note = None, ""
    target = pick_moment(rng, earliest=archive.oldest_snapshot, now=now, lookback_hours=24, slack_seconds=slack,
                         marker_seconds=c.marker_seconds) if archive.oldest_snapshot else None
    if target is not None:
        with recovered(cfg, db, scratch / f"{db.name}-moment", at=target, region=store.region, env=env) as done:
            moment = prove_pg(done, dbname, live_markers_pg(url), target, slack_seconds=slack,
                              marker_seconds=c.marker_seconds)
    else:
        note = ("no base backup is old enough to hold a moment the markers can prove; only the newest position was "
                "tested")
    with recovered(cfg, db, scratch / f"{db.name}-newest", region=store.region, env=env) as done:
        # recovery fetches WAL segment by segment until the archive runs out: its newest position is the archive
        # as it stood when recovery ended, so that is the moment proven
        ended = datetime.now(tz=now.tzinfo)
        newest = prove_pg(done, dbname, live_markers_pg(url), ended, slack_seconds=slack,
                          marker_seconds=c.marker_seconds)
    return TestResult(db.name, store.region, moment, newest, note)
