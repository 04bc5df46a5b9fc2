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
import json
import os
import re
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
from ops_project.common.errors import ConfigError, IntegrityError, OpsError
from ops_project.common.scrub import scrub

PREFIX = "continuous/pgbackrest"  # each region's pgBackRest repository
KEEP = ("PATH", "LANG", "TZ")
TIMEOUT_SECONDS = 6 * 3600  # a base backup of a large cluster takes long; a hung one must still end
SOCKET_DIR_MAX = 90  # a Unix socket's path is at most 107 bytes: the directory, then /.s.PGSQL.5432
SHORT_OF_THE_MOMENT = ("recovery ended before configured recovery target was reached",
                       "requested recovery stop point is before consistent recovery point")


class ArchiveFailed(OpsError):
    """pgBackRest (or a restored server) could not do its work: our environment, not a verdict on the archive."""


class ArchiveCorrupt(IntegrityError):
    """What the archive holds cannot be read back as it was written (a checksum or format error): a verdict on
    the archive, not on our environment."""


# pgBackRest's words for stored bytes that are not what was written (anything else is our environment)
CORRUPT = re.compile(r"checksum|corrupt|\[FormatError\]|unexpected eof|decompress|zstd? error|"
                     r"invalid (size|header|format|magic)", re.IGNORECASE)


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
             "log-level-console=warn", "log-level-stderr=off", "log-level-file=off", "start-fast=y",
             "compress-type=zst", "compress-level=3", "archive-async=n", "archive-check=y",
             # a region that refuses WAL must not fill the live server's disk: past this much waiting WAL,
             # pgBackRest drops it (a hole the point-in-time test then reads as red), PostgreSQL keeps running
             f"archive-push-queue-max={c.archive_queue_max_gb}GiB"]
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
    import pwd

    if os.geteuid() != 0 or user == pwd.getpwuid(os.geteuid()).pw_name:
        return None
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
    local = [Path(r.path).resolve() / PREFIX for r in cfg.regions if r.kind == "local"]
    try:
        for sub in (work, work / "log", work / "lock", work / "spool", *local):
            if not sub.exists():  # only what this makes is handed over: never a directory that was there
                sub.mkdir(parents=True)
                for user in users:
                    _give(sub, user)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(config_text(cfg))
        tmp.chmod(0o644)
        tmp.replace(path)
    except PermissionError as exc:
        raise ConfigError(f"cannot write pgBackRest's configuration or repositories ({exc.filename}: permission "
                          f"denied): run `continuous setup` as root or as the cluster's owner") from None
    return path


def _current(cfg) -> None:
    """The written configuration must be the one ops.yaml gives now: a region added, removed or reordered since
    ``setup`` would make ``--repo=n`` name another region."""
    path = config_path(cfg)
    try:
        written = path.read_text()
    except OSError:
        raise ConfigError(f"pgBackRest's configuration {path} is missing: run `python -m ops_project continuous "
                          f"setup` on the database host") from None
    if written != config_text(cfg):
        raise ConfigError(f"pgBackRest's configuration {path} differs from what {cfg.source} gives now (regions or "
                          f"clusters changed): run `python -m ops_project continuous setup` on the database host")


def run(cfg, name: str, *args: str, env: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT_SECONDS) -> str:
    """``pgbackrest --stanza=<name> ARGS`` as the cluster's owner; its output. ``ArchiveFailed`` (scrubbed of
    every secret) when it fails."""
    pg = settings(cfg, name)
    if args[-1:] != ("stanza-create",):
        _current(cfg)
    run_env = environment(cfg, env)
    argv = _as(pg.os_user, [binary(), f"--config={config_path(cfg)}", f"--stanza={name}", *args])
    returncode, out, err = _run_group(argv, run_env, timeout, what=f"pgbackrest {args[-1] if args else ''} of {name}")
    if returncode != 0:
        said = scrub((err + out).strip(), run_env.values())
        error = ArchiveCorrupt if CORRUPT.search(said) else ArchiveFailed
        raise error(f"pgbackrest {' '.join(args)} of {name} failed (exit {returncode}): {said[-1500:] or 'no output'}")
    return out


def _run_group(argv: list[str], env: Mapping[str, str], timeout: float, *, what: str) -> tuple[int, str, str]:
    """Run ``argv`` in a process group of its own; on timeout the whole group is killed (a runuser whose
    pgBackRest child kept running would hold the stanza's lock)."""
    try:
        proc = subprocess.Popen(argv, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
    except OSError as exc:
        raise ArchiveFailed(f"cannot run {argv[0]}: {exc.strerror}") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        import signal

        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise ArchiveFailed(f"{what} took more than {timeout:.0f} s and was stopped") from None
    return proc.returncode, out, err


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
    out, failed = [], []
    for region in cfg.regions:  # a region that fails does not keep the others from their backup
        n = repo_index(cfg, region.name)
        started = time.monotonic()
        try:
            run(cfg, name, f"--repo={n}", "--type=full", "backup", env=env)
        except ArchiveFailed as exc:
            failed.append(f"{region.name}: {exc}")
            continue
        label = newest_label(info(cfg, name, env=env), n)
        out.append(BaseBackup(name, region.name, label or "?", time.monotonic() - started))
    if failed:
        done = ", ".join(f"{b.region} ({b.label})" for b in out) or "none"
        raise ArchiveFailed(f"full backup of {name} failed in {'; '.join(failed)} (done: {done})")
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

    ``NothingToRecover`` when the archive does not reach the moment; ``ArchiveCorrupt`` when what it holds does
    not read back; ``ArchiveFailed`` for our environment (a region unreachable, scratch too small, a server that
    will not start). Whatever fails, nothing half-restored is left in ``to``.
    """
    pg = settings(cfg, db.name)
    region_cfg = cfg.region(region) if region else cfg.restore_region
    to = Path(to)
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise OpsError(f"{to} already exists{' and is not empty' if to.is_dir() else ''}: choose a new directory "
                       f"for the restored cluster")
    if not to.parent.is_dir():
        raise OpsError(f"{to.parent} does not exist: create it first")
    if len(str(to.resolve())) > SOCKET_DIR_MAX or any(ch in str(to) for ch in "'\" \\"):
        raise OpsError(f"{to}: the restored cluster's socket lives in it, so its path must be at most "
                       f"{SOCKET_DIR_MAX} characters, without quotes, spaces or backslashes: choose a shorter one")
    repo = repo_index(cfg, region_cfg.name)
    _room_for(cfg, db.name, repo, to.parent, env)
    made = not to.exists()
    to.mkdir(mode=0o700, exist_ok=True)
    _give(to, pg.os_user)
    started = time.monotonic()
    args = [f"--repo={repo}", f"--pg1-path={to}", "--archive-mode=off", f"--tablespace-map-all={to}/ops_tablespaces"]
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
            conninfo = stack.enter_context(_server(pg, to, environment(cfg, env),
                                                   timeout=cfg.continuous.recovery_timeout_minutes * 60))
        except BaseException:  # nothing half-restored is left behind to be mistaken for a good copy
            _discard(to, made)
            raise
        yield Recovered(db.name, region_cfg.name, to, conninfo, time.monotonic() - started)


def _room_for(cfg, name: str, repo: int, where: Path, env) -> None:
    """Scratch must hold the restored cluster: the newest full backup's database size, and a tenth more for the
    WAL replayed. Too little room is our environment's failure, said before anything is written."""
    sizes = [b.get("info", {}).get("size", 0) for b in info(cfg, name, env=env).get("backup", [])
             if b.get("database", {}).get("repo-key") == repo]
    need = int(max(sizes, default=0) * 1.1) + (64 << 20)
    free = shutil.disk_usage(where).free
    if free < need:
        raise ArchiveFailed(f"{where} has {free >> 20} MiB free and the restored cluster of {name} needs about "
                            f"{need >> 20} MiB: give restore.scratch_dir (or --to) a volume with room")


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
def _server(pg, data: Path, env: dict[str, str], *, timeout: float) -> Iterator[str]:
    """A server on ``data`` (a freshly restored cluster) with a socket in the directory, no TCP, archiving off,
    no hot standby (a live server's larger limits cannot stop recovery), our own trust-on-the-socket pg_hba;
    yields its conninfo once recovery has ended. ``env`` is pgBackRest's (its restore_command fetches the WAL
    with ``archive-get``)."""
    import psycopg

    bins = _bin_dir(pg, data)
    hba = data / "ops_restore_hba.conf"
    hba.write_text("local all all trust\n")
    _give(hba, pg.os_user)
    for name, text in (("postgresql.conf", "# written by ops_project for a restored cluster\n"),
                       ("pg_hba.conf", "# written by ops_project for a restored cluster: its owner, on the socket\n"
                                       "local all all peer\n")):
        if not (data / name).exists():  # Debian keeps them in /etc: the restored cluster has none
            (data / name).write_text(text)
            _give(data / name, pg.os_user)
    port = 5432
    options = (f"-c port={port} -c listen_addresses='' -c unix_socket_directories='{data}' "
               f"-c hba_file='{hba}' -c archive_mode=off -c archive_command='' -c logging_collector=off "
               f"-c log_destination=stderr -c hot_standby=off -c lc_messages=C")
    log = data / "ops_restore.log"
    ctl = str(bins / "pg_ctl")
    secrets = list(env.values())
    returncode, _out, err = _run_group(_as(pg.os_user, [ctl, "-D", str(data), "-l", str(log), "-o", options, "-w",
                                                        "-t", str(int(timeout)), "start"]),
                                       env, timeout + 30, what=f"starting the restored cluster in {data}")
    conninfo = (f"host={data} port={port} user={pg.db_user} dbname=postgres connect_timeout=5 "
                f"options='-c statement_timeout=0'")
    try:
        deadline = time.monotonic() + timeout
        while True:
            said = log.read_text(errors="replace") if log.exists() else ""
            fetch = _fetch_error(said)
            if fetch is not None:  # a WAL segment that could not be fetched ends recovery early: never a verdict
                error = ArchiveCorrupt if CORRUPT.search(fetch) else ArchiveFailed
                raise error(f"recovering the cluster in {data}: pgBackRest could not fetch WAL from the region: "
                            f"{scrub(fetch, secrets)}")
            if any(m in said for m in SHORT_OF_THE_MOMENT):
                raise NothingToRecover(f"the archive does not reach the moment asked for: no transaction it holds "
                                       f"committed after the moment (WAL not yet in the region, or nothing written "
                                       f"since), so recovery cannot tell it got there. Ask for an earlier moment, or "
                                       f"`--at latest` for everything the archive holds "
                                       f"({scrub(_last(said), secrets)})")
            try:
                with psycopg.connect(conninfo, autocommit=True) as con:
                    if not con.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                        break
            except psycopg.OperationalError:
                if returncode != 0 or not _running(ctl, pg, data):
                    detail = _last(said) if said else err.strip()[-400:]
                    raise ArchiveFailed(f"the restored cluster in {data} did not start or stopped during recovery: "
                                        f"{scrub(detail, secrets)}") from None
            if time.monotonic() > deadline:
                raise ArchiveFailed(f"the restored cluster in {data} was still recovering after {timeout:.0f} s "
                                    f"(continuous.recovery_timeout_minutes): {scrub(_last(said), secrets)}")
            time.sleep(0.5)
        yield conninfo
    finally:
        try:
            _run_group(_as(pg.os_user, [ctl, "-D", str(data), "-m", "fast", "-w", "stop"]), env, 120,
                       what=f"stopping the restored cluster in {data}")
        except ArchiveFailed:
            _run_group(_as(pg.os_user, [ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]), env, 60,
                       what=f"stopping the restored cluster in {data}")
        hba.unlink(missing_ok=True)


def _fetch_error(log: str) -> str | None:
    """pgBackRest's own error from the server's restore_command (``archive-get``), if any: a segment that is
    simply not there yet ends recovery without one."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "ERROR: [" in line:  # pgBackRest's form (its detail on the lines after); PostgreSQL's is "ERROR:  text"
            detail = [line.strip()]
            for more in lines[i + 1:i + 8]:
                if more[:1].isdigit():  # the next line with a timestamp of its own
                    break
                detail.append(more.strip())
            return " ".join(d for d in detail if d)[-800:]
    return None


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
