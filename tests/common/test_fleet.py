"""Tenant discovery (``ops_project.common.fleet``): what a rule finds, what it refuses, and when a tenant goes."""

from __future__ import annotations

import random
import sqlite3
import uuid

import psycopg
import pytest

from ops_project.common import fleet
from ops_project.common.config import DatabaseConfig, DiscoverRule
from ops_project.common.errors import ConfigError
from ops_project.config import load_config
from tests.conftest import PG_ADMIN, local_region


def _db(path):
    sqlite3.connect(path).close()
    return path


def test_a_glob_finds_every_tenant_file_by_its_stem_and_nothing_else(tmp_path):
    d1 = tmp_path / "d1"
    d1.mkdir()
    for name in ("acme", "bravo", "charlie", "test-scratch"):
        _db(d1 / f"{name}.db")
    (d1 / "acme.db-wal").write_bytes(b"")  # SQLite's own files beside a database
    (d1 / "acme.db-shm").write_bytes(b"")
    (d1 / "notes.txt").write_text("not matched by the glob")
    (d1 / "sub.db").mkdir()  # a directory that matches is not a database
    rule = DiscoverRule(engine="sqlite", glob=str(d1 / "*.db*"), exclude=["test-*"])
    found = fleet.discover([], [rule])
    assert found.names == ["acme", "bravo", "charlie"]
    assert [db.path for db in found.databases] == [d1 / "acme.db", d1 / "bravo.db", d1 / "charlie.db"]
    assert found.problems == [] and found.unavailable == []


def test_declared_databases_come_first_and_a_clash_is_named_never_silently_dropped(tmp_path):
    d1 = tmp_path / "d1"
    d1.mkdir()
    for name in ("booking", "delta", "Echo Bookings"):
        _db(d1 / f"{name}.db")
    other = _db(tmp_path / "booking.db")
    same = DatabaseConfig(name="delta", engine="sqlite", path=d1 / "delta.db")
    clash = DatabaseConfig(name="booking", engine="sqlite", path=other)
    found = fleet.discover([clash, same], [DiscoverRule(engine="sqlite", glob=str(d1 / "*.db"))])
    assert found.names == ["booking", "delta"]  # the declared ones, once each; the found delta is the same file
    assert found.databases[0].path == other
    assert len(found.problems) == 2
    assert any("Echo Bookings" in p and "cannot be a database name" in p for p in found.problems)
    assert any(str(d1 / "booking.db") in p and "already taken" in p and str(other) in p for p in found.problems)


def test_a_directory_that_is_not_there_is_unavailable_not_an_empty_fleet(tmp_path):
    rule = DiscoverRule(engine="sqlite", glob=str(tmp_path / "unmounted" / "*.db"))
    found = fleet.discover([], [rule])
    assert found.databases == [] and found.problems == []
    assert len(found.unavailable) == 1 and "is the volume mounted?" in found.unavailable[0]
    # ... so the tenants known before are held, with no removal clock running
    todo = fleet.changes(["acme", "bravo"], found, [], {}, now=10_000.0, remove_after_minutes=0)
    assert todo.remove == [] and todo.held == ["acme", "bravo"] and todo.missing_since == {}


def test_a_missing_tenant_is_removed_only_after_its_time_and_a_returning_one_is_forgiven():
    rule_fleet = fleet.Fleet([DatabaseConfig(name=n, engine="sqlite", path=f"/d1/{n}.db") for n in ("a", "c", "d")])
    known = ["a", "b", "c", "booking"]  # booking is declared: never removed by discovery
    first = fleet.changes(known, rule_fleet, ["booking"], {}, now=1_000.0, remove_after_minutes=60)
    assert first.add == ["d"] and first.remove == [] and first.missing_since == {"b": 1_000.0}
    later = fleet.changes(known, rule_fleet, ["booking"], first.missing_since, now=1_000.0 + 3599,
                          remove_after_minutes=60)
    assert later.remove == [] and later.missing_since == {"b": 1_000.0}
    due = fleet.changes(known, rule_fleet, ["booking"], later.missing_since, now=1_000.0 + 3600,
                        remove_after_minutes=60)
    assert due.remove == ["b"] and due.missing_since == {}
    back = fleet.Fleet([*rule_fleet.databases, DatabaseConfig(name="b", engine="sqlite", path="/d1/b.db")])
    forgiven = fleet.changes(known, back, ["booking"], first.missing_since, now=1_000.0 + 7200,
                             remove_after_minutes=60)
    assert forgiven.remove == [] and forgiven.missing_since == {}
    own = fleet.changes(known, rule_fleet, ["booking"], first.missing_since, now=1_000.0 + 3600,
                        remove_after_minutes=60, minutes_of={"b": 61})
    assert own.remove == [] and own.missing_since == {"b": 1_000.0}  # its own rule's time, not the default


def test_removal_minutes_follow_the_rule_that_found_each_tenant():
    fast = DiscoverRule(engine="sqlite", glob="/d1/*.db", remove_after_minutes=0)
    slow = DiscoverRule(engine="postgres", url_env="SRV", remove_after_minutes=90)
    origin = {"a": fleet.describe(fast), "b": fleet.describe(slow), "c": "discover /gone/*.db"}
    assert fleet.removal_minutes([fast, slow], origin) == {"a": 0, "b": 90, "c": 90}  # a rule gone: the longest


def test_resolving_one_name_agrees_with_discovering_the_fleet(tmp_path):
    """Oracle: the full discovery; a run looks its batch up by name without listing the fleet each time."""
    rng = random.Random(7)
    for trial in range(20):
        root = tmp_path / f"t{trial}"
        dirs = [root / "a", root / "b"]
        for d in dirs:
            d.mkdir(parents=True)
        names = [f"t{i}" for i in range(12)] + ["Bad Name", "x" * 70]
        for name in rng.sample(names, 9):
            _db(rng.choice(dirs) / f"{name}.db")
        rules = [DiscoverRule(engine="sqlite", glob=str(d / "*.db"), exclude=["t1*"]) for d in dirs]
        declared = [DatabaseConfig(name="t3", engine="sqlite", path=root / "elsewhere.db")]
        found = {db.name: db for db in fleet.discover(declared, rules).databases}
        for name in names + ["t99"]:
            got = fleet.resolve(declared, rules, name)
            want = found.get(name) if name != "t3" else None  # a declared name is the configuration's own
            assert (got.path if got else None) == (want.path if want else None), (trial, name)


@pytest.fixture
def tenant_databases():
    tag = f"opsdisc_{uuid.uuid4().hex[:6]}"
    names = [f"{tag}_a", f"{tag}_b", f"{tag}_skip", f"{tag}_Upper"]
    with psycopg.connect(PG_ADMIN, autocommit=True) as con:
        for name in names:
            con.execute(f'CREATE DATABASE "{name}"')
        try:
            yield tag, names
        finally:
            for name in names:
                con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_postgres_server_is_listed_by_pattern_and_each_tenant_gets_its_own_url(tenant_databases):
    tag, names = tenant_databases
    rule = DiscoverRule(engine="postgres", url_env="OPS_TEST_SERVER", pattern=f"{tag}_*", exclude=["*_skip"])
    found = fleet.discover([], [rule], env={"OPS_TEST_SERVER": PG_ADMIN})
    assert found.names == names[:2] and found.unavailable == []
    (problem,) = found.problems  # a name the partitions cannot hold is named, and the rest still found
    assert f"{tag}_Upper" in problem and "cannot be a database name" in problem
    assert all(db.url_env == "OPS_TEST_SERVER" and db.dbname == db.name for db in found.databases)
    from ops_project.common.pgurl import with_dbname

    with psycopg.connect(with_dbname(PG_ADMIN, names[1])) as con:
        assert con.execute("SELECT current_database()").fetchone() == (names[1],)
    env = {"OPS_TEST_SERVER": PG_ADMIN}
    assert fleet.resolve([], [rule], names[0], env).dbname == names[0]
    assert fleet.resolve([], [rule], names[2], env) is None  # excluded
    with pytest.raises(ConfigError):
        with_dbname("postgresql://[broken", "x")


def test_a_server_rule_before_a_file_rule_resolves_each_name_where_discovery_finds_it(tenant_databases, tmp_path):
    """Oracle: ``discover``. With the server's rule first and a file rule whose pattern also matches, a name is
    the server's only if the server has it; when the server cannot be listed, a file tenant is still found."""
    tag, names = tenant_databases
    d1 = tmp_path / "d1"
    d1.mkdir()
    _db(d1 / f"{tag}_filed.db")
    _db(d1 / f"{names[0]}.db")  # both have it: the first rule's
    rules = [DiscoverRule(engine="postgres", url_env="OPS_TEST_SERVER", pattern=f"{tag}_*"),
             DiscoverRule(engine="sqlite", glob=str(d1 / "*.db"))]
    env = {"OPS_TEST_SERVER": PG_ADMIN}
    found = {db.name: db for db in fleet.discover([], rules, env).databases}
    for name in [*names, f"{tag}_filed", f"{tag}_none"]:
        got, want = fleet.resolve([], rules, name, env), found.get(name)
        assert (got and (got.engine, got.path)) == (want and (want.engine, want.path)), name
    assert found[names[0]].engine == "postgres" and found[f"{tag}_filed"].engine == "sqlite"
    down = {"OPS_TEST_SERVER": "postgresql://postgres@127.0.0.1:1/postgres"}
    assert fleet.resolve([], rules, f"{tag}_filed", down).engine == "sqlite"
    assert fleet.resolve([], rules, names[1], down).url_env == "OPS_TEST_SERVER"  # its backup names the server


def test_an_unreachable_server_is_unavailable_and_its_password_is_never_told():
    url = "postgresql://ops:s3cret-pw-XYZ@127.0.0.1:1/postgres"
    rule = DiscoverRule(engine="postgres", url_env="OPS_TEST_SERVER", pattern="tenant_*")
    found = fleet.discover([], [rule], env={"OPS_TEST_SERVER": url})
    assert found.databases == [] and len(found.unavailable) == 1
    assert "cannot list the server's databases" in found.unavailable[0]
    assert "s3cret-pw-XYZ" not in found.unavailable[0]


def test_configuration_errors_name_the_rule_where_the_file_has_it(tmp_path, write_config):
    region = local_region(tmp_path, "r1")
    path = write_config([{"name": "booking", "engine": "sqlite", "path": "b.db"},
                         {"discover": {"engine": "sqlite"}}], [region])
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "databases[1].discover: discovering sqlite databases needs 'glob'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(write_config([{"discover": {"engine": "postgres", "glob": "*.db"}}], [region]))
    assert "databases[0].discover" in str(err.value) and "url_env" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(write_config([], [region]))
    assert "declare at least one database" in str(err.value)
    cfg = load_config(write_config([{"discover": {"engine": "sqlite", "glob": "d1/*.db"}}], [region]))
    assert cfg.discover[0].glob == str(path.parent / "d1" / "*.db")  # relative to the file, like every path
    assert cfg.discovers and cfg.databases == []
