"""How far each Litestream replica has got: the current RPO, read from the regions themselves.

A replica's position is when its newest piece (a WAL segment or a snapshot) arrived in the region: the file's
time in a local region, the object's ``LastModified`` in S3. The data a loss of the live database would cost
right now is at most ``now - newest``: an upper bound, honest in both directions, because the marker rows
(``markers.py``) make a healthy replica advance at least once per ``marker_seconds`` even when nobody books.

A region that cannot be listed is *unreachable*: our environment failed, and the replica may be fine. That is
said as such, never as a stalled replica, and never as healthy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ops_project.common.errors import OpsError
from ops_project.continuous.litestream import replica_prefix

PIECES = (".wal.lz4", ".snapshot.lz4")
WAL_SEGMENT = re.compile(r"/[0-9A-F]{24}-[0-9a-f]{40}(\.[a-z0-9]+)?$")  # pgBackRest's name for an archived segment


@dataclass(frozen=True)
class Replica:
    database: str
    region: str
    newest: datetime | None = None  # when its newest WAL segment or snapshot arrived
    oldest_snapshot: datetime | None = None  # the earliest moment it can restore to
    pieces: int = 0
    error: str | None = None  # the region could not be listed


def read_replica(store, database: str) -> Replica:
    """The replica of ``database`` in ``store``'s region (one listing of its prefix)."""
    newest = oldest = None
    pieces = 0
    try:
        for info in store.list(f"{replica_prefix(database)}/generations/"):
            if not info.key.endswith(PIECES):
                continue
            pieces += 1
            at = datetime.fromtimestamp(info.modified, UTC)
            newest = at if newest is None or at > newest else newest
            if info.key.endswith(".snapshot.lz4") and (oldest is None or at < oldest):
                oldest = at
    except (OpsError, OSError) as exc:
        return Replica(database, store.region, error=str(exc))
    return Replica(database, store.region, newest, oldest, pieces)


def read_archive(store, database: str) -> Replica:
    """The pgBackRest archive of ``database`` (a stanza) in ``store``'s region: when its newest WAL segment
    arrived, and when its oldest full backup was finished (the earliest moment it can recover to)."""
    from ops_project.continuous.pgbackrest import PREFIX  # noqa: PLC0415

    newest = oldest = None
    pieces = 0
    try:
        for info in store.list(f"{PREFIX}/archive/{database}/"):
            if WAL_SEGMENT.search(info.key):
                pieces += 1
                at = datetime.fromtimestamp(info.modified, UTC)
                newest = at if newest is None or at > newest else newest
        for info in store.list(f"{PREFIX}/backup/{database}/"):
            if info.key.endswith("/backup.manifest"):
                at = datetime.fromtimestamp(info.modified, UTC)
                oldest = at if oldest is None or at < oldest else oldest
    except (OpsError, OSError) as exc:
        return Replica(database, store.region, error=str(exc))
    return Replica(database, store.region, newest, oldest, pieces)


def read_protected(store, db) -> Replica:
    """The continuous copy of a protected database in a region: Litestream's replica or pgBackRest's archive."""
    return read_archive(store, db.name) if db.engine == "postgres" else read_replica(store, db.name)


@dataclass(frozen=True)
class Finding:
    database: str
    region: str
    status: str  # ok | stalled | never | unreachable
    age_seconds: float | None  # now - newest: the data at risk, at most
    over_objective: bool
    text: str

    @property
    def ok(self) -> bool:
        return self.status == "ok" and not self.over_objective


def _start_hint(engine: str) -> str:
    if engine == "postgres":
        return ("is the server archiving? (`python -m ops_project continuous setup`, then archive_mode, "
                "archive_command and archive_timeout in postgresql.conf as it prints them)")
    return "is Litestream running? (`python -m ops_project continuous run`, or the ops-litestream service)"


def _stall_hint(engine: str, region: str) -> str:
    if engine == "postgres":
        return (f"the server's archive_command is failing or archiving is off (pg_stat_archiver), or pgBackRest "
                f"cannot write to {region}")
    return f"Litestream has stopped, or cannot write to {region}"


def assess(replica: Replica, now: datetime, *, stall_seconds: int, objective_seconds: int,
           marker_seconds: int, engine: str = "sqlite") -> Finding:
    """What on-call should read about one replica."""
    where = f"{replica.database} in {replica.region}"
    if replica.error is not None:
        return Finding(replica.database, replica.region, "unreachable", None, False,
                       f"{where}: could not read the replica (our environment, not the replica): {replica.error}")
    if replica.newest is None:
        return Finding(replica.database, replica.region, "never", None, True,
                       f"{where}: no continuous replica yet: {_start_hint(engine)}")
    age = max(0.0, (now - replica.newest).total_seconds())
    over = age > objective_seconds
    if age > stall_seconds:
        return Finding(replica.database, replica.region, "stalled", age, over,
                       f"{where}: the replica last advanced {age:.0f} s ago although a marker is written every "
                       f"{marker_seconds} s: {_stall_hint(engine, replica.region)}")
    if over:
        return Finding(replica.database, replica.region, "ok", age, True,
                       f"{where}: up to {age:.0f} s of changes are not in the replica, over the RPO objective of "
                       f"{objective_seconds} s")
    return Finding(replica.database, replica.region, "ok", age, False,
                   f"{where}: current RPO at most {age:.0f} s")


def summary(findings: list[Finding]) -> str:
    bad = [f for f in findings if not f.ok]
    if not bad:
        worst = max((f.age_seconds or 0.0 for f in findings), default=0.0)
        return f"{len(findings)} replicas advancing; current RPO at most {worst:.0f} s"
    return "; ".join(f.text for f in bad)


def survey(cfg, now: datetime) -> list[tuple[Replica, Finding]]:
    """Every continuous replica of the configuration (``OpsConfig``), read and assessed: one listing per database
    and region. A region that cannot be opened (its variables unset) is unreachable, said so."""
    from ops_project.clients import Clients  # noqa: PLC0415 - keeps this module free of the clients' imports

    clients, out = Clients(cfg), []
    for region in cfg.regions:
        try:
            store = clients.store(region)
        except OpsError as exc:
            replicas = [(db, Replica(db.name, region.name, error=str(exc))) for db in cfg.continuous_protected]
        else:
            replicas = [(db, read_protected(store, db)) for db in cfg.continuous_protected]
        out += [(r, judge_replica(cfg, db, r, now)) for db, r in replicas]
    return out


def judge_replica(cfg, db, replica: Replica, now: datetime) -> Finding:
    """``assess`` with the configuration's thresholds for ``db``."""
    c = cfg.continuous
    return assess(replica, now, stall_seconds=c.stall_seconds, objective_seconds=cfg.objectives.rpo_minutes * 60,
                  marker_seconds=c.marker_seconds, engine=db.engine)
