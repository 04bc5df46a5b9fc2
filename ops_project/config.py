"""The configuration contract (DESIGN.md): one YAML file, validated on load.

Secrets never live in the file: fields ending in ``_env`` name the environment variable that
holds them, and those are read only when a run needs them (``secret()``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ops_project.errors import ConfigError, SecretMissingError

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "ops.yaml"
NAME_RE = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Objectives(_Strict):
    rpo_minutes: int = Field(240, gt=0)
    rto_minutes: int = Field(120, gt=0)


class DatabaseConfig(_Strict):
    name: str = Field(pattern=NAME_RE)
    engine: Literal["sqlite", "postgres"]
    path: Path | None = None
    url_env: str | None = None
    demo_size_mb: float | None = Field(None, gt=0, description="generate a demo database here on first use")

    @model_validator(mode="after")
    def _engine_fields(self) -> DatabaseConfig:
        if self.engine == "sqlite" and self.path is None:
            raise ValueError("an sqlite database needs 'path'")
        if self.engine == "postgres" and not self.url_env:
            raise ValueError("a postgres database needs 'url_env' (the variable holding its URL)")
        return self


class RegionConfig(_Strict):
    name: str = Field(pattern=NAME_RE)
    kind: Literal["local", "s3"]
    path: Path | None = None
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    endpoint_url_env: str | None = None
    region_name: str | None = None
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> RegionConfig:
        if self.kind == "local" and self.path is None:
            raise ValueError("a local region needs 'path'")
        if self.kind == "s3":
            if not self.bucket:
                raise ValueError("an s3 region needs 'bucket'")
            if bool(self.access_key_id_env) != bool(self.secret_access_key_env):
                raise ValueError("give both access_key_id_env and secret_access_key_env, or neither")
        return self


class Compression(_Strict):
    codec: Literal["zstd"] = "zstd"
    level: int = Field(3, ge=1, le=19)
    threads: int = Field(2, ge=0, le=64)


class Encryption(_Strict):
    age_recipients_env: str | None = None


class Retention(_Strict):
    keep_last: int = Field(6, ge=1)
    daily: int = Field(7, ge=0)
    weekly: int = Field(4, ge=0)
    monthly: int = Field(12, ge=0)
    incomplete_after_hours: int = Field(24, ge=1)


class BackupConfig(_Strict):
    cron: str = "0 */4 * * *"
    start: datetime = datetime(2026, 1, 1)
    grace_minutes: int | None = Field(None, gt=0)
    compression: Compression = Compression()
    encryption: Encryption = Encryption()
    retention: Retention = Retention()
    retention_cron: str = "30 3 * * *"
    scratch_dir: Path | None = None
    part_size_mb: int = Field(8, ge=5, le=512)

    @field_validator("cron", "retention_cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a five-field cron expression")
        return value


class RestoreConfig(_Strict):
    region: str | None = None  # default: the last region (proves the disaster-recovery path)
    age_identity_env: str | None = None  # the age identity (secret key line from age-keygen) for encrypted backups
    postgres_scratch_url_env: str | None = None  # server for throw-away databases; default: the source's
    scratch_dir: Path | None = None


class DrillConfig(_Strict):
    cron: str = "0 2 * * 0"  # weekly, Sunday 02:00 in the configured time zone
    start: datetime = datetime(2026, 1, 5)
    scenarios: list[Literal["region_loss", "corrupt_latest", "database_loss"]] = [
        "region_loss", "corrupt_latest", "database_loss"]


class ReleaseTarget(_Strict):
    base_url: str = "http://127.0.0.1:8080"
    health_paths: list[str] = ["/health"]
    latency_budget_ms: int = Field(200, gt=0)
    requests_per_endpoint: int = Field(20, ge=1, le=10000)
    max_error_rate: float = Field(0.01, ge=0, le=1)
    p95_regression_factor: float = Field(1.5, gt=1)
    rollout_timeout_seconds: float = Field(60, ge=0)
    request_timeout_seconds: float = Field(5, gt=0)
    smoke_tenant: str = "tenant-0001"


class ReleasesConfig(_Strict):
    repo: str
    tag_pattern: str = r"^v\d+\.\d+\.\d+$"
    target: ReleaseTarget = ReleaseTarget()
    rollback_command: list[str] | None = None
    run_existing_on_first_tick: bool = False
    minimum_interval_seconds: int = Field(60, ge=5)

    @field_validator("tag_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        re.compile(value)
        return value


class AlertsConfig(_Strict):
    webhook_url_env: str | None = None
    ui_base_url: str = "http://127.0.0.1:3000"  # for the run link in every alert
    dedup_hours: float = Field(24, gt=0)
    state_dir: Path | None = None  # where sent alerts are remembered (default: .ops/alerts beside the file)


class OpsConfig(_Strict):
    timezone: str = "UTC"
    objectives: Objectives = Objectives()
    databases: list[DatabaseConfig] = Field(min_length=1)
    regions: list[RegionConfig] = Field(min_length=1)
    backup: BackupConfig = BackupConfig()
    restore: RestoreConfig = RestoreConfig()
    drills: DrillConfig = DrillConfig()
    releases: ReleasesConfig | None = None
    alerts: AlertsConfig | None = None
    source: Path | None = Field(None, exclude=True)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Africa/Johannesburg)") from None
        return value

    @model_validator(mode="after")
    def _unique(self) -> OpsConfig:
        for label, names in (("databases", [d.name for d in self.databases]),
                             ("regions", [r.name for r in self.regions])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{label}: duplicate name(s) {', '.join(dupes)}")
        if self.restore.region and self.restore.region not in {r.name for r in self.regions}:
            raise ValueError(f"restore.region: {self.restore.region!r} is not one of the configured regions")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def primary(self) -> RegionConfig:
        return self.regions[0]

    @property
    def secondaries(self) -> list[RegionConfig]:
        return self.regions[1:]

    def secret_variables(self) -> list[str]:
        """Every environment variable the file names: their values must never appear in an alert."""
        names = [self.backup.encryption.age_recipients_env, self.restore.age_identity_env,
                 self.restore.postgres_scratch_url_env, self.alerts.webhook_url_env if self.alerts else None]
        names += [d.url_env for d in self.databases]
        for r in self.regions:
            names += [r.endpoint_url_env, r.access_key_id_env, r.secret_access_key_env]
        return sorted({n for n in names if n})

    @property
    def restore_region(self) -> RegionConfig:
        """Where restore verification reads from: configured, else the last region (the DR path)."""
        return self.region(self.restore.region) if self.restore.region else self.regions[-1]

    def database(self, name: str) -> DatabaseConfig:
        for db in self.databases:
            if db.name == name:
                return db
        known = ", ".join(d.name for d in self.databases)
        raise ConfigError(f"{self.source}: no database named {name!r} (configured: {known})")

    def region(self, name: str) -> RegionConfig:
        for region in self.regions:
            if region.name == name:
                return region
        known = ", ".join(r.name for r in self.regions)
        raise ConfigError(f"{self.source}: no region named {name!r} (configured: {known})")


def config_path(path: str | os.PathLike | None = None) -> Path:
    """The file to load: the argument, else ``$OPS_CONFIG``, else ``ops.yaml`` at the repo root."""
    chosen = path or os.environ.get("OPS_CONFIG") or DEFAULT_CONFIG
    return Path(chosen).expanduser().resolve()


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith(("function-", "literal[")):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _resolve_paths(raw: dict, base: Path) -> None:
    """Relative paths in the file are relative to the file, not to the current directory."""
    def fix(item: dict, key: str) -> None:
        value = item.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            item[key] = str(base / value)

    for section in ("databases", "regions"):
        for item in raw.get(section) or []:
            if isinstance(item, dict):
                fix(item, "path")
    for section in ("backup", "restore"):
        if isinstance(raw.get(section), dict):
            fix(raw[section], "scratch_dir")
    if isinstance(raw.get("alerts"), dict):
        fix(raw["alerts"], "state_dir")
    releases = raw.get("releases")
    if isinstance(releases, dict) and isinstance(releases.get("repo"), str) and \
            "://" not in releases["repo"] and not releases["repo"].startswith("git@"):
        fix(releases, "repo")  # a local repository path, relative to the file


def load_config(path: str | os.PathLike | None = None) -> OpsConfig:
    """Load and validate the configuration; every error names the file and the key."""
    file = config_path(path)
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{file}: configuration file not found (set OPS_CONFIG or create ops.yaml)") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read configuration: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping with 'databases' and 'regions' at the top level")
    _resolve_paths(raw, file.parent)
    try:
        cfg = OpsConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling against DESIGN.md)"
            problems.append(f"{file}: {_loc(err['loc'])}: {msg}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
    return cfg.model_copy(update={"source": file})


def secret(var: str | None, *, what: str, env: Mapping[str, str] | None = None) -> str | None:
    """Read the environment variable ``var`` names; a clear error (never the value) when unset."""
    if not var:
        return None
    env = os.environ if env is None else env
    value = env.get(var)
    if not value:
        raise SecretMissingError(
            f"environment variable {var} (named by {what}) is not set: export it before running"
        )
    return value
