"""The fleet: the databases the configuration declares, plus the tenants its ``discover`` rules find.

A D1-style platform creates a SQLite database per tenant; a new tenant must be backed up from its first window
without anyone editing ``ops.yaml``. A rule finds them:
- ``{engine: sqlite, glob: /srv/d1/*.db}``: every file matching the glob, named by its stem;
- ``{engine: postgres, url_env: VAR, pattern: "tenant_*"}``: every database on that server whose name matches.

Finding must never be mistaken for losing: a rule that cannot look (the directory is not mounted, the server is
down) is *unavailable*, and its tenants are neither added nor removed until it can look again; a file or database
that cannot become a tenant (a name the partitions cannot hold, a name already taken) is a *problem*, named with
what to do, and never silently left out. Removal is decided by the caller after ``remove_after_minutes``.
"""

from __future__ import annotations

import fnmatch
import glob
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ops_project.common.config import NAME_RE, DatabaseConfig, DiscoverRule, secret
from ops_project.common.errors import OpsError
from ops_project.common.scrub import scrub

SIDECARS = ("-wal", "-shm", "-journal")  # SQLite's own files beside a database: never tenants
_NAME = re.compile(NAME_RE)
LISTING_TTL_SECONDS = 10.0  # how long one glob listing answers name lookups in a process


@dataclass(frozen=True)
class Fleet:
    databases: list[DatabaseConfig]  # declared first (in the file's order), then each rule's finds by name
    problems: list[str] = field(default_factory=list)  # what could not become a tenant, and what to do
    unavailable: list[str] = field(default_factory=list)  # rules that could not look, and why
    origin: dict[str, str] = field(default_factory=dict)  # discovered name → the rule that found it (describe)
    looked: list[str] = field(default_factory=list)  # the rules that could look (describe)

    @property
    def names(self) -> list[str]:
        return [db.name for db in self.databases]


def of(cfg, env: Mapping[str, str] | None = None) -> Fleet:
    """The fleet of a configuration (``OpsConfig``): declared databases, then what its rules find now."""
    return discover(list(cfg.databases), list(cfg.discover), env)


def describe(rule: DiscoverRule) -> str:
    return f"discover {rule.glob}" if rule.engine == "sqlite" else f"discover {rule.url_env} {rule.pattern}"


def _excluded(rule: DiscoverRule, name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in rule.exclude)


def glob_root(pattern: str) -> Path:
    """The directory a glob lists: its longest leading part without a wildcard."""
    fixed = []
    for part in Path(pattern).parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def sqlite_files(rule: DiscoverRule) -> list[Path]:
    """The files the rule's glob matches (sorted), or OpsError when its directory cannot be read at all (an
    unmounted volume must not read as "every tenant deleted")."""
    root = glob_root(rule.glob)
    if not root.is_dir():
        raise OpsError(f"{describe(rule)}: directory {root} does not exist or is not a directory (is the volume "
                       f"mounted?); its tenants are kept as they are until it can be listed")
    try:
        next(root.iterdir(), None)
    except OSError as exc:
        raise OpsError(f"{describe(rule)}: cannot list {root}: {exc.strerror}") from None
    found = [Path(p) for p in glob.glob(rule.glob, recursive=True)]
    return sorted(p for p in found if p.is_file() and not p.name.endswith(SIDECARS))


def postgres_names(rule: DiscoverRule, url: str) -> list[str]:
    """The databases on the server that can be connected to (templates are never tenants)."""
    import psycopg  # noqa: PLC0415 - only a postgres rule needs it

    try:
        with psycopg.connect(url, connect_timeout=10, autocommit=True) as con:
            rows = con.execute("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
                               "ORDER BY datname").fetchall()
    except psycopg.Error as exc:
        raise OpsError(scrub(f"{describe(rule)}: cannot list the server's databases: {str(exc).strip()}",
                             [url])) from None
    return [name for (name,) in rows]


def discover(declared: list[DatabaseConfig], rules: list[DiscoverRule],
             env: Mapping[str, str] | None = None) -> Fleet:
    """Every database of the fleet now: ``declared`` and what each rule finds."""
    taken = {db.name: db for db in declared}
    databases, problems, unavailable, origin, looked = list(declared), [], [], {}, []
    for rule in rules:
        try:
            found = _found(rule, env)
        except OpsError as exc:
            unavailable.append(str(exc))
            continue
        except OSError as exc:  # a permission error, a stale mount: the rule cannot look, it found no one gone
            unavailable.append(f"{describe(rule)}: cannot list: {exc.strerror or exc}")
            continue
        looked.append(describe(rule))
        for name, db, where in found:
            if _excluded(rule, name):
                continue
            if not _NAME.fullmatch(name):
                problems.append(f"{where}: {name!r} cannot be a database name (lower-case letters, digits, '-' "
                                f"and '_', at most 63): rename it, or add it to the rule's exclude")
                continue
            if name in taken:
                if taken[name] != db and not _same(taken[name], db):
                    problems.append(f"{where}: the name {name} is already taken ({_origin(taken[name])}): rename "
                                    f"one of them, or add it to the rule's exclude")
                continue
            taken[name] = db
            databases.append(db)
            origin[name] = describe(rule)
    return Fleet(databases, problems, unavailable, origin, looked)


def guard_emptied(found: Fleet, origin_before: Mapping[str, str]) -> Fleet:
    """``found``, with a rule that now finds no tenant at all, where it found some before, made unavailable: an
    unmounted volume often leaves its empty mount point behind, and a server restored empty by mistake lists
    nothing, and neither means that every tenant was deleted."""
    had: dict[str, int] = {}
    for rule in origin_before.values():
        had[rule] = had.get(rule, 0) + 1
    finds = set(found.origin.values())
    emptied = [rule for rule in found.looked if had.get(rule) and rule not in finds]
    if not emptied:
        return found
    told = [f"{rule}: found no database, where it found {had[rule]} before (is the volume mounted, the server the "
            f"right one?); nothing is removed while it finds none. If every one of them was deleted on purpose, "
            f"remove the rule from the configuration" for rule in emptied]
    return Fleet(found.databases, found.problems, [*found.unavailable, *told], found.origin,
                 [rule for rule in found.looked if rule not in emptied])


def removal_minutes(rules: list[DiscoverRule], origin: Mapping[str, str]) -> dict[str, int]:
    """How long each discovered tenant must be missing before it is removed: its own rule's
    ``remove_after_minutes`` (a tenant whose rule has left the configuration: the longest of the rules')."""
    by_rule = {describe(rule): rule.remove_after_minutes for rule in rules}
    longest = max(by_rule.values(), default=60)
    return {name: by_rule.get(rule, longest) for name, rule in origin.items()}


def _found(rule: DiscoverRule, env: Mapping[str, str] | None) -> list[tuple[str, DatabaseConfig, str]]:
    if rule.engine == "sqlite":
        return [(p.stem, DatabaseConfig.model_construct(name=p.stem, engine="sqlite", path=p, url_env=None,
                                                        dbname=None, demo_size_mb=None), str(p))
                for p in sqlite_files(rule)]
    url = secret(rule.url_env, what=f"databases[].{describe(rule)}", env=env)
    return [(name, _postgres(rule, name), f"{describe(rule)}: database {name}")
            for name in postgres_names(rule, url) if fnmatch.fnmatchcase(name, rule.pattern)]


def _postgres(rule: DiscoverRule, name: str) -> DatabaseConfig:
    # built without validation: a name the partitions cannot hold is a problem ``discover`` reports, not a crash
    return DatabaseConfig.model_construct(name=name, engine="postgres", path=None, url_env=rule.url_env,
                                          dbname=name, demo_size_mb=None)


def _same(a: DatabaseConfig, b: DatabaseConfig) -> bool:
    if a.engine != b.engine:
        return False
    if a.engine == "sqlite":
        return Path(a.path).resolve() == Path(b.path).resolve()
    return a.url_env == b.url_env and (a.dbname or a.name) == (b.dbname or b.name)


def _origin(db: DatabaseConfig) -> str:
    return str(db.path) if db.engine == "sqlite" else f"database {db.dbname or db.name} of {db.url_env}"


_LISTINGS: dict[tuple, tuple[float, dict[str, Path | None]]] = {}


def _listing(rule: DiscoverRule, env: Mapping[str, str] | None, *, fresh: bool) -> dict[str, Path | None]:
    """What the rule finds, by name (a file's path; None for a server's database), listed at most every
    ``LISTING_TTL_SECONDS`` in a process unless ``fresh``."""
    key = (rule.engine, rule.glob, rule.url_env, rule.pattern)
    cached = _LISTINGS.get(key)
    if cached and not fresh and time.monotonic() - cached[0] < LISTING_TTL_SECONDS:
        return cached[1]
    by_name: dict[str, Path | None] = {}
    if rule.engine == "sqlite":
        for path in sqlite_files(rule):
            by_name.setdefault(path.stem, path)
    else:
        url = secret(rule.url_env, what=f"databases[].{describe(rule)}", env=env)
        by_name = {n: None for n in postgres_names(rule, url) if fnmatch.fnmatchcase(n, rule.pattern)}
    _LISTINGS[key] = (time.monotonic(), by_name)
    return by_name


def resolve(declared: list[DatabaseConfig], rules: list[DiscoverRule], name: str,
            env: Mapping[str, str] | None = None) -> DatabaseConfig | None:
    """The database ``name`` as the first rule that finds it (None: no rule does), from a listing cached for a
    few seconds: a run of a batch of fifty looks up fifty names. A name a rule cannot hold is never resolved, so a
    lookup agrees with ``discover``. When a server cannot be listed and no later rule finds the name, a name its
    pattern matches is that server's (its backup then fails on the server, saying why)."""
    if not _NAME.fullmatch(name) or any(db.name == name for db in declared):
        return None
    unlisted = None
    for rule in rules:
        if _excluded(rule, name) or (rule.engine == "postgres" and not fnmatch.fnmatchcase(name, rule.pattern)):
            continue
        try:
            listing = _listing(rule, env, fresh=False)
            if name not in listing:
                listing = _listing(rule, env, fresh=True)
        except (OpsError, OSError):
            if rule.engine == "postgres" and unlisted is None:
                unlisted = _postgres(rule, name)
            continue
        if name not in listing:
            continue
        if rule.engine == "postgres":
            return _postgres(rule, name)
        return DatabaseConfig(name=name, engine="sqlite", path=listing[name])
    return unlisted


@dataclass(frozen=True)
class Changes:
    add: list[str]
    remove: list[str]
    missing_since: dict[str, float]  # name → when it was first seen missing (epoch seconds), still waiting
    held: list[str]  # missing, but a rule could not look: neither removed nor counted


def changes(known: list[str], fleet: Fleet, declared: list[str], missing_since: Mapping[str, float], now: float,
            remove_after_minutes: int, minutes_of: Mapping[str, int] | None = None) -> Changes:
    """What to do to the known tenants (the partitions) for the fleet found now: add the new ones (in the fleet's
    order); remove one only after it has been missing for its ``minutes_of`` (else ``remove_after_minutes``) of
    looks that could see it; while any rule is unavailable nothing is removed and no clock runs (its tenants may
    just be out of sight)."""
    minutes_of = minutes_of or {}
    present, seen, kept = set(fleet.names), set(known), set(declared)
    add = [name for name in fleet.names if name not in seen]
    gone = [name for name in known if name not in present and name not in kept]
    if fleet.unavailable:
        return Changes(add, [], dict(missing_since), gone)
    remove, waiting = [], {}
    for name in gone:
        since = missing_since.get(name, now)
        if now - since >= minutes_of.get(name, remove_after_minutes) * 60:
            remove.append(name)
        else:
            waiting[name] = since
    return Changes(add, remove, waiting, [])
