"""Shared fixtures: real SeaweedFS regions, a throw-away PostgreSQL database, demo data, configs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
import yaml

from ops_project.demo.database import generate
from tests.servers import ACCESS_KEY, SECRET_KEY, start_weed

PG_ADMIN = os.environ.get("OPS_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def weed_pair(tmp_path_factory):
    """Two SeaweedFS servers: two S3 regions."""
    servers = []
    try:
        for name in ("weed-a", "weed-b"):
            servers.append(start_weed(tmp_path_factory.mktemp(name)))
        yield servers
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
def s3_env(monkeypatch, weed_pair):
    """Environment variables an s3 region config names (values never appear in config)."""
    monkeypatch.setenv("OPS_T_ENDPOINT_A", weed_pair[0].endpoint)
    monkeypatch.setenv("OPS_T_ENDPOINT_B", weed_pair[1].endpoint)
    monkeypatch.setenv("OPS_T_KEY", ACCESS_KEY)
    monkeypatch.setenv("OPS_T_SECRET", SECRET_KEY)
    return weed_pair


def s3_region(name: str, bucket: str, endpoint_env: str) -> dict:
    return {"name": name, "kind": "s3", "bucket": bucket, "endpoint_url_env": endpoint_env,
            "access_key_id_env": "OPS_T_KEY", "secret_access_key_env": "OPS_T_SECRET"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def demo_db_template(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("demo") / "booking.db", 3, seed=7)


@pytest.fixture
def demo_db(tmp_path, demo_db_template) -> Path:
    path = tmp_path / "live" / "booking.db"
    path.parent.mkdir()
    shutil.copy(demo_db_template, path)
    return path


@pytest.fixture
def write_config(tmp_path):
    def write(databases: list[dict], regions: list[dict], *, pin_start: bool = True, **extra) -> Path:
        """``pin_start``: a fixed ``backup.start`` (tests reach back to old windows); ``False``: the range
        starts at the first backup, as in the shipped default."""
        path = tmp_path / f"ops-{uuid.uuid4().hex[:6]}.yaml"
        doc = {"timezone": "Africa/Johannesburg", "databases": databases, "regions": regions, **extra}
        if pin_start:
            doc["backup"] = {"start": "2026-01-01T00:00:00", **(doc.get("backup") or {})}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return write


@pytest.fixture
def home_instance(tmp_path):
    """A Dagster instance on the SQLite storage of a DAGSTER_HOME (partition status is cached there)."""
    from dagster import DagsterInstance
    from dagster._core.instance.ref import InstanceRef

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        yield instance


def sqlite_tenants(tmp_path: Path, template: Path, names: list[str]) -> list[dict]:
    """One copy of ``template`` per tenant under ``tmp_path/d1``, as ``databases`` entries."""
    folder = tmp_path / "d1"
    folder.mkdir(exist_ok=True)
    dbs = []
    for name in names:
        shutil.copy(template, folder / f"{name}.db")
        dbs.append({"name": name, "engine": "sqlite", "path": str(folder / f"{name}.db")})
    return dbs


def local_region(tmp_path: Path, name: str) -> dict:
    path = tmp_path / "regions" / name
    path.mkdir(parents=True, exist_ok=True)  # like a mounted volume: there before the region is used
    return {"name": name, "kind": "local", "path": str(path)}


@pytest.fixture(scope="session")
def pg_server():
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as con:
            con.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN} and is not reachable: {exc}", pytrace=False)
    for tool in ("pg_dump", "pg_restore", "psql"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is required on PATH (apt-get install postgresql-client)", pytrace=False)
    return PG_ADMIN


def _db_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def scratch_pg(pg_server):
    """Create throw-away databases; all are dropped at the end of the test."""
    made = []

    def make(name: str | None = None) -> str:
        name = name or f"ops_test_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg_server, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return _db_url(name)

    yield make
    with psycopg.connect(pg_server, autocommit=True) as con:
        for name in made:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


PG_BOOKING_SQL = """
CREATE TABLE tenants (id serial PRIMARY KEY, slug text UNIQUE NOT NULL, name text NOT NULL);
CREATE TABLE customers (id serial PRIMARY KEY, tenant_id int NOT NULL REFERENCES tenants(id), email text NOT NULL);
CREATE TABLE appointments (
    id bigserial PRIMARY KEY, tenant_id int NOT NULL REFERENCES tenants(id),
    customer_id int NOT NULL REFERENCES customers(id), starts_at timestamptz NOT NULL,
    status text NOT NULL, notes text);
CREATE INDEX appointments_tenant_start ON appointments (tenant_id, starts_at);
CREATE TABLE audit_log (id bigserial PRIMARY KEY, payload json NOT NULL);  -- json has no hash function
INSERT INTO audit_log (payload) SELECT json_build_object('n', g, 'what', 'booked') FROM generate_series(1, 1000) g;
INSERT INTO tenants (slug, name) SELECT 'tenant-' || g, 'Salon ' || g FROM generate_series(1, 20) g;
INSERT INTO customers (tenant_id, email) SELECT 1 + g % 20, 'c' || g || '@example.com' FROM generate_series(1, 5000) g;
INSERT INTO appointments (tenant_id, customer_id, starts_at, status, notes)
SELECT 1 + g % 20, 1 + g % 5000, timestamptz '2026-01-01' + g * interval '15 minutes',
       (ARRAY['booked','confirmed','completed','cancelled'])[1 + g % 4], repeat('note ', g % 30)
FROM generate_series(1, %(rows)s) g;
"""


@pytest.fixture
def pg_booking(scratch_pg):
    """A PostgreSQL booking database with a few tens of thousands of rows."""
    url = scratch_pg()
    with psycopg.connect(url, autocommit=True) as con:
        con.execute(PG_BOOKING_SQL.replace("%(rows)s", "40000"))
    return url


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


@pytest.fixture
def webhook():
    """A Slack-like webhook: records every JSON body; answers with the status in ``state['status']``."""
    received: list[dict] = []
    state = {"status": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(state["status"])
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/T000/B000/XXXX", received, state
    server.shutdown()


@pytest.fixture
def receiver():
    """An HTTP receiver (Slack webhook, PagerDuty Events API): records (path, JSON body); answers
    ``state['status']`` (PagerDuty's own answer is 202)."""
    received: list[tuple[str, dict]] = []
    state = {"status": 202}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(state["status"])
            self.end_headers()
            self.wfile.write(b'{"status":"success"}')

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received, state
    server.shutdown()


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on 127.0.0.1; yields (port, messages as email.message.Message)."""
    from email import message_from_bytes

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from tests.servers import free_ports

    messages: list = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's API
            msg = message_from_bytes(envelope.original_content or envelope.content)
            msg["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
            messages.append(msg)
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):  # accepts a login, as a relay would
        return AuthResult(success=isinstance(auth_data, LoginPassword))

    port = free_ports(1)[0]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    yield port, messages
    controller.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def storage_instance(request, tmp_path):
    """A Dagster instance on each storage people run: SQLite under a DAGSTER_HOME (the embedded default,
    one event database per run) and PostgreSQL (production; dagster-postgres)."""
    from dagster import DagsterInstance, instance_for_test
    from dagster._core.instance.ref import InstanceRef

    if request.param == "sqlite":
        home = tmp_path / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
            assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
            yield instance
        return
    make = request.getfixturevalue("scratch_pg")
    url = make().replace("postgresql://", "postgresql+psycopg2://", 1)
    with instance_for_test(overrides={"storage": {"postgres": {"postgres_url": url}}}) as instance:
        yield instance


from tests.releases.conftest import api  # noqa: E402,F401 - the demo API fixture, for tests outside releases/
