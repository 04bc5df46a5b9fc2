"""pgBackRest (Debian's package): WAL archiving of PostgreSQL clusters into every region, base backups, and
restores to a moment.

Each configured region is one pgBackRest repository (``repo1`` is the first region, ``repo2`` the second, …)
rooted at ``continuous/pgbackrest/`` in the region, with one stanza per protected database:
``archive/<database>/`` holds the WAL segments, ``backup/<database>/`` the full backups. It is pgBackRest's own
layout, so ``pgbackrest restore`` works on it by hand (README, "Restore to a moment").

pgBackRest reads the cluster's files, so everything here runs on the database host as the cluster's owner
(``os_user``; through ``runuser`` when this process is root). The server pushes each WAL segment itself, through
``archive_command`` (``server_settings``). Secrets never enter the configuration file: an S3 region's endpoint
and keys reach pgBackRest as ``PGBACKREST_REPO<n>_*`` variables, built here from the variables the region names;
the PostgreSQL service needs the same ones in its environment for ``archive-push`` (deploy/, README).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from ops_project.backups.restore import NoBackupError
from ops_project.common.config import DatabaseConfig, secret
from ops_project.common.errors import ConfigError, OpsError
from ops_project.common.scrub import scrub

PREFIX = "continuous/pgbackrest"  # each region's pgBackRest repository
KEEP = ("PATH", "LANG", "TZ")
TIMEOUT_SECONDS = 6 * 3600  # a base backup of a large cluster takes long; a hung one must still end
START_TIMEOUT_SECONDS = 600  # a restored server replaying WAL up to the moment
SHORT_OF_THE_MOMENT = ("recovery ended before configured recovery target was reached",
                       "requested recovery stop point is before consistent recovery point")


class ArchiveFailed(OpsError):
    """pgBackRest (or a restored server) could not do its work: our environment, not a verdict on the archive."""


class NothingToRecover(NoBackupError):
    """The archive does not reach the moment asked for (no base backup before it, or WAL missing after it)."""


def binary() -> str:
    found = shutil.which("pgbackrest")
    if not found:
        raise ConfigError("pgbackrest is not installed: `apt-get install pgbackrest` (Debian's package) on the "
                          "database host")
    return found


def settings(cfg, name: str):
    if cfg.continuous is None or name not in cfg.continuous.postgres:
        raise ConfigError(f"{name} is not archived with pgBackRest (continuous.postgres in {cfg.source}): restore one "
                          f"of its snapshot backups instead (`backups restore --database {name} --to URL`)")
    return cfg.continuous.postgres[name]


def repo_index(cfg, region: str) -> int:
    """pgBackRest's repository number of a region: its place in ``regions``, from 1."""
    return 1 + [r.name for r in cfg.regions].index(region)


def config_path(cfg) -> Path:
    return Path(cfg.continuous.pgbackrest_dir) / "pgbackrest.conf"


def _s3_endpoint(region, env: Mapping[str, str]) -> tuple[str, int]:
    url = secret(region.endpoint_url_env, what=f"regions[{region.name}].endpoint_url_env", env=env) \
        if region.endpoint_url_env else region.endpoint_url
    if not url:
        return f"s3.{region.region_name or 'us-east-1'}.amazonaws.com", 443
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if parts.scheme != "https":
        raise ConfigError(f"regions[{region.name}]: pgBackRest reaches S3 over HTTPS only, and this endpoint is "
                          f"{parts.scheme}: serve it over TLS (a certificate the host trusts) or leave this region "
                          f"out of WAL archiving")
    return parts.hostname or "", parts.port or 443


def config_text(cfg) -> str:
    """pgBackRest's configuration: one repository per region, one stanza per protected database. No secret."""
    c = cfg.continuous
    if c is None or not c.postgres:
        raise ConfigError(f"{cfg.source}: no PostgreSQL database is archived (add continuous.postgres; README, "
                          f"\"Continuous protection\")")
    work = Path(c.pgbackrest_dir)
    lines = ["# written by python -m ops_project continuous setup (from ops.yaml): do not edit",
             "# S3 endpoints and keys come from PGBACKREST_REPO<n>_* variables in the environment", "[global]",
             f"log-path={work / 'log'}", f"lock-path={work / 'lock'}", f"spool-path={work / 'spool'}",
             "log-level-console=warn", "log-level-stderr=off", "log-level-file=info", "start-fast=y",
             "compress-type=zst", "compress-level=3", "archive-async=n", "archive-check=y"]
    for n, region in enumerate(cfg.regions, 1):
        lines.append(f"repo{n}-retention-full={c.base_backups_kept}")
        if region.kind == "local":
            lines += [f"repo{n}-type=posix", f"repo{n}-path={Path(region.path).resolve() / PREFIX}"]
        else:
            path = "/" + "/".join(p for p in (region.prefix.strip("/"), PREFIX) if p)
            lines += [f"repo{n}-type=s3", f"repo{n}-path={path}", f"repo{n}-s3-bucket={region.bucket}",
                      f"repo{n}-s3-region={region.region_name or 'us-east-1'}", f"repo{n}-s3-uri-style=path"]
    for name, pg in c.postgres.items():
        lines += ["", f"[{name}]", f"pg1-path={pg.data_directory}", f"pg1-port={pg.port}",
                  f"pg1-socket-path={pg.socket_dir}", f"pg1-user={pg.db_user}"]
    return "\n".join(lines) + "\n"


def environment(cfg, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """What pgBackRest runs with: a few basics and, for each S3 region, its endpoint and keys as
    ``PGBACKREST_REPO<n>_*`` (a clear error when a variable is unset)."""
    env = os.environ if env is None else env
    out = {k: env[k] for k in KEEP if env.get(k)}
    out.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    for n, region in enumerate(cfg.regions, 1):
        if region.kind != "s3":
            continue
        host, port = _s3_endpoint(region, env)
        out[f"PGBACKREST_REPO{n}_S3_ENDPOINT"] = host
        out[f"PGBACKREST_REPO{n}_STORAGE_PORT"] = str(port)
        if region.access_key_id_env:
            out[f"PGBACKREST_REPO{n}_S3_KEY"] = secret(region.access_key_id_env,
                                                       what=f"regions[{region.name}].access_key_id_env", env=env)
            out[f"PGBACKREST_REPO{n}_S3_KEY_SECRET"] = secret(
                region.secret_access_key_env, what=f"regions[{region.name}].secret_access_key_env", env=env)
        else:
            out[f"PGBACKREST_REPO{n}_S3_KEY_TYPE"] = "auto"  # the host's instance role
        ca = env.get("AWS_CA_BUNDLE") or env.get("SSL_CERT_FILE")
        if ca and Path(ca).is_file():
            out[f"PGBACKREST_REPO{n}_STORAGE_CA_FILE"] = ca
    return out


def server_variables(cfg) -> list[tuple[str, str]]:
    """What the PostgreSQL server's own environment needs for ``archive-push`` to reach the S3 regions: each
    ``PGBACKREST_REPO<n>_*`` variable and where its value comes from (names only, never values)."""
    out = []
    for n, region in enumerate(cfg.regions, 1):
        if region.kind != "s3":
            continue
        source = f"the host of {region.endpoint_url_env}" if region.endpoint_url_env else \
            (region.endpoint_url or "AWS's endpoint for the region")
        out += [(f"PGBACKREST_REPO{n}_S3_ENDPOINT", source),
                (f"PGBACKREST_REPO{n}_STORAGE_PORT", "its port (443 unless the URL names one)")]
        if region.access_key_id_env:
            out += [(f"PGBACKREST_REPO{n}_S3_KEY", region.access_key_id_env),
                    (f"PGBACKREST_REPO{n}_S3_KEY_SECRET", region.secret_access_key_env)]
    return out


def _owner(user: str) -> tuple[int, int] | None:
    """(uid, gid) to hand files to, when this process is root and ``user`` is someone else; else None."""
    if os.geteuid() != 0 or user == getpass.getuser():
        return None
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(f"continuous.postgres: the operating-system user {user!r} does not exist on this host "
                          f"(os_user: the owner of the cluster's data directory)") from None
    return entry.pw_uid, entry.pw_gid


def _give(path: Path, user: str) -> None:
    ids = _owner(user)
    if ids is not None:
        os.chown(path, *ids)


def _as(user: str, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if _owner(user) is not None else argv


def write_config(cfg) -> Path:
    """Write the configuration (no secret in it), readable by the clusters' owners; make the local regions'
    repositories theirs. Its path."""
    path = config_path(cfg)
    users = {pg.os_user for pg in cfg.continuous.postgres.values()}
    work = path.parent
    for sub in (work, work / "log", work / "lock", work / "spool"):
        sub.mkdir(parents=True, exist_ok=True)
        for user in users:
            _give(sub, user)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(config_text(cfg))
    tmp.chmod(0o644)
    tmp.replace(path)
    for region in cfg.regions:
        if region.kind == "local":
            repo = Path(region.path).resolve() / PREFIX
            repo.mkdir(parents=True, exist_ok=True)
            for user in users:
                _give(repo, user)
    return path


def run(cfg, name: str, *args: str, env: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT_SECONDS) -> str:
    """``pgbackrest --stanza=<name> ARGS`` as the cluster's owner; its output. ``ArchiveFailed`` (scrubbed of
    every secret) when it fails."""
    pg = settings(cfg, name)
    run_env = environment(cfg, env)
    argv = _as(pg.os_user, [binary(), f"--config={config_path(cfg)}", f"--stanza={name}", *args])
    try:
        done = subprocess.run(argv, env=run_env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ArchiveFailed(f"pgbackrest {args[-1] if args else ''} of {name} took more than {timeout:.0f} s") \
            from None
    if done.returncode != 0:
        said = scrub((done.stderr + done.stdout).strip(), run_env.values())
        raise ArchiveFailed(f"pgbackrest {' '.join(args)} of {name} failed (exit {done.returncode}): "
                            f"{said[-1500:] or 'no output'}")
    return done.stdout


def archive_command(cfg, name: str) -> str:
    return f"{binary()} --config={config_path(cfg)} --stanza={name} archive-push %p"


def server_settings(cfg, name: str) -> dict[str, str]:
    """The lines the cluster's postgresql.conf needs (a restart for archive_mode and wal_level)."""
    pg = settings(cfg, name)
    return {"archive_mode": "on", "archive_command": archive_command(cfg, name),
            "archive_timeout": f"{pg.archive_timeout_seconds}s", "wal_level": "replica"}


def setup(cfg, name: str, env: Mapping[str, str] | None = None) -> str:
    """Write the configuration, create the stanza in every region (idempotent) and check that the server's
    archiving reaches every region (``pgbackrest check`` pushes a WAL segment and waits for it)."""
    write_config(cfg)
    run(cfg, name, "stanza-create", env=env)
    return run(cfg, name, "check", env=env, timeout=300)


@dataclass(frozen=True)
class BaseBackup:
    database: str
    region: str
    label: str
    seconds: float


def base_backup(cfg, name: str, env: Mapping[str, str] | None = None) -> list[BaseBackup]:
    """A full backup into each region (pgBackRest writes one repository per backup), oldest expired per
    ``base_backups_kept``."""
    out = []
    for region in cfg.regions:
        n = repo_index(cfg, region.name)
        started = time.monotonic()
        run(cfg, name, f"--repo={n}", "--type=full", "backup", env=env)
        label = newest_label(info(cfg, name, env=env), n)
        out.append(BaseBackup(name, region.name, label or "?", time.monotonic() - started))
    return out


def info(cfg, name: str, env: Mapping[str, str] | None = None) -> dict:
    got = json.loads(run(cfg, name, "--output=json", "info", env=env, timeout=300) or "[]")
    return got[0] if got else {}


def newest_label(stanza: dict, repo: int) -> str | None:
    labels = [b["label"] for b in stanza.get("backup", []) if b.get("database", {}).get("repo-key") == repo]
    return labels[-1] if labels else None


# restoring -------------------------------------------------------------------------------------------------


def _bin_dir(pg, data: Path) -> Path:
    if pg.bin_dir is not None:
        return Path(pg.bin_dir)
    version = (data / "PG_VERSION").read_text().strip() if (data / "PG_VERSION").is_file() else None
    if version and Path(f"/usr/lib/postgresql/{version}/bin/pg_ctl").is_file():
        return Path(f"/usr/lib/postgresql/{version}/bin")
    found = shutil.which("pg_ctl")
    if not found:
        raise ConfigError(f"pg_ctl of PostgreSQL {version or '?'} is not installed: set continuous.postgres.*.bin_dir")
    return Path(found).parent


@dataclass
class Recovered:
    """A restored cluster, recovered and running on a Unix socket of its own (``conninfo``)."""

    database: str
    region: str
    data: Path
    conninfo: str
    seconds: float


@contextlib.contextmanager
def recovered(cfg, db: DatabaseConfig, to: Path, *, at: datetime | None = None, region: str | None = None,
              env: Mapping[str, str] | None = None) -> Iterator[Recovered]:
    """Restore ``db``'s cluster from ``region`` (default: the restore region) into the new directory ``to`` as it
    was at ``at`` (None: as far as the archive reaches), start it on a socket of its own with archiving off,
    wait for recovery to end, and yield it running; it is stopped on the way out and ``to`` stays behind.

    ``NothingToRecover`` when the archive does not reach the moment; ``ArchiveFailed`` for our environment.
    """
    pg = settings(cfg, db.name)
    region_cfg = cfg.region(region) if region else cfg.restore_region
    to = Path(to)
    if to.exists() and any(to.iterdir()):
        raise OpsError(f"{to} already exists and is not empty: choose a new directory for the restored cluster")
    if not to.parent.is_dir():
        raise OpsError(f"{to.parent} does not exist: create it first")
    made = not to.exists()
    to.mkdir(mode=0o700, exist_ok=True)
    _give(to, pg.os_user)
    started = time.monotonic()
    args = [f"--repo={repo_index(cfg, region_cfg.name)}", f"--pg1-path={to}", "--archive-mode=off"]
    if at is not None:
        args += ["--type=time", f"--target={at.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f+00')}",
                 "--target-action=promote"]
    with contextlib.ExitStack() as stack:
        try:
            try:
                run(cfg, db.name, *args, "restore", env=env)
            except ArchiveFailed as exc:
                if "no backup set found" in str(exc) or "unable to find backup set with stop time" in str(exc):
                    moment = f" ended before {at.isoformat()}" if at else ""
                    raise NothingToRecover(f"no base backup of {db.name} in {region_cfg.name}{moment}: nothing can "
                                           f"be recovered to it (`continuous status` shows from when each region "
                                           f"can restore; `continuous base-backup` takes one now)") from None
                raise
            conninfo = stack.enter_context(_server(pg, to, environment(cfg, env)))
        except BaseException:  # nothing half-restored is left behind to be mistaken for a good copy
            _discard(to, made)
            raise
        yield Recovered(db.name, region_cfg.name, to, conninfo, time.monotonic() - started)


def _discard(path: Path, made: bool) -> None:
    if made:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


@contextlib.contextmanager
def _server(pg, data: Path, env: dict[str, str]) -> Iterator[str]:
    """A server on ``data`` (a freshly restored cluster) with a socket in the directory, no TCP, archiving off,
    our own trust-on-the-socket pg_hba; yields its conninfo once recovery has ended. ``env`` is pgBackRest's
    (its restore_command fetches the WAL with ``archive-get``)."""
    import psycopg

    bins = _bin_dir(pg, data)
    hba = data / "ops_restore_hba.conf"
    hba.write_text("local all all trust\n")
    _give(hba, pg.os_user)
    if not (data / "postgresql.conf").exists():  # Debian keeps it in /etc: the restored cluster has none
        (data / "postgresql.conf").write_text("# written by ops_project for a restored cluster\n")
        _give(data / "postgresql.conf", pg.os_user)
    port = 5432
    options = (f"-c port={port} -c listen_addresses='' -c unix_socket_directories='{data}' "
               f"-c hba_file='{hba}' -c archive_mode=off -c archive_command='' -c logging_collector=off "
               f"-c log_destination=stderr")
    log = data / "ops_restore.log"
    ctl = str(bins / "pg_ctl")
    start = subprocess.run(_as(pg.os_user, [ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t",
                                            str(START_TIMEOUT_SECONDS), "start"]),
                           env=env, capture_output=True, text=True, timeout=START_TIMEOUT_SECONDS + 30)
    conninfo = f"host={data} port={port} user={pg.db_user} dbname=postgres connect_timeout=5"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            said = log.read_text(errors="replace") if log.exists() else ""
            if any(m in said for m in SHORT_OF_THE_MOMENT):
                raise NothingToRecover(f"the archive does not reach the moment asked for (WAL after its last "
                                       f"archived segment is not in the region, or the moment is before the base "
                                       f"backup's end): {_last(said)}")
            if start.returncode != 0 or not _running(ctl, pg, data):
                raise ArchiveFailed(f"the restored cluster in {data} did not start or stopped during recovery: "
                                    f"{_last(said) if said else start.stderr.strip()[-400:]}")
            try:
                with psycopg.connect(conninfo, autocommit=True) as con:
                    if not con.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                        break
            except psycopg.OperationalError:
                pass
            if time.monotonic() > deadline:
                raise ArchiveFailed(f"the restored cluster in {data} was still recovering after "
                                    f"{START_TIMEOUT_SECONDS} s: {_last(said)}")
            time.sleep(0.2)
        yield conninfo
    finally:
        subprocess.run(_as(pg.os_user, [ctl, "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True,
                       timeout=120)
        hba.unlink(missing_ok=True)


def _running(ctl: str, pg, data: Path) -> bool:
    return subprocess.run(_as(pg.os_user, [ctl, "-D", str(data), "status"]), capture_output=True).returncode == 0


def _last(log: str) -> str:
    lines = [line for line in log.splitlines() if "FATAL" in line or "ERROR" in line] or log.splitlines()
    return lines[-1][-400:] if lines else "the server wrote nothing"


def owned_scratch(base: Path | None, user: str) -> Path:
    """A new directory the cluster's owner can write into (restores go below it)."""
    made = Path(tempfile.mkdtemp(prefix="ops-pitr-pg-", dir=base))
    made.chmod(0o755)
    _give(made, user)
    return made
