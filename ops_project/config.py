"""The configuration contract: one YAML file (README.md, "Configuration"), validated on load.

The root model composes each domain's own section (``<domain>/config.py``). Secrets never live in
the file: fields ending in ``_env`` name the environment variable that holds them, and those are
read only when a run needs them (``ops_project.clients``).
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from ops_project.backups.config import BackupConfig, DrillConfig, Objectives, RestoreConfig
from ops_project.cache.config import CacheConfig
from ops_project.capacity.config import CapacityConfig
from ops_project.common.config import DatabaseConfig, DiscoverRule, Strict
from ops_project.common.errors import ConfigError, UnknownNameError
from ops_project.common.names import identifier
from ops_project.continuous.config import ContinuousConfig
from ops_project.execution.config import ExecutionConfig
from ops_project.notify.config import AlertsConfig
from ops_project.queries.config import QueriesConfig
from ops_project.releases.config import ReleasesConfig
from ops_project.storage.config import RegionConfig, regions_overlap

OWNER = re.compile(r"team:[A-Za-z0-9_-]+|[^@\s]+@[^@\s]+\.[^@\s]+")
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "ops.yaml"


class OpsConfig(Strict):
    timezone: str = "UTC"
    objectives: Objectives = Objectives()
    databases: list[DatabaseConfig] = []  # declared one by one
    discover: list[DiscoverRule] = []  # written as ``{discover: {...}}`` entries of ``databases`` (common/fleet.py)
    regions: list[RegionConfig] = Field(min_length=1)
    backup: BackupConfig = BackupConfig()
    restore: RestoreConfig = RestoreConfig()
    drills: DrillConfig = DrillConfig()
    continuous: ContinuousConfig | None = None  # Litestream WAL replication of SQLite databases (point in time)
    releases: ReleasesConfig | None = None
    alerts: AlertsConfig | None = None
    queries: QueriesConfig = QueriesConfig()
    cache: CacheConfig | None = None  # availability warmed into Redis; the demo API reads through it
    capacity: CapacityConfig = CapacityConfig()  # the weekly capacity report: limits, prices, horizons
    execution: ExecutionConfig = ExecutionConfig()  # which engine runs a run's steps (in-process, Celery…)
    owners: list[str] = []  # who answers for every asset: e-mail addresses or team:NAME (shown in the UI)
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _split_discovery(cls, raw):
        """``databases`` holds declared databases and ``{discover: ...}`` rules; the rules go to ``discover``."""
        if isinstance(raw, dict) and isinstance(raw.get("databases"), list):
            entries = raw["databases"]
            rules = [e["discover"] for e in entries if _is_rule(e)]
            if rules:
                raw = {**raw, "databases": [e for e in entries if not _is_rule(e)],
                       "discover": [*(raw.get("discover") or []), *rules]}
        return raw

    @field_validator("owners")
    @classmethod
    def _owners(cls, value: list[str]) -> list[str]:
        for owner in value:
            if not OWNER.fullmatch(owner):
                raise ValueError(f"{owner!r} is not an owner: use an e-mail address (oncall@example.com) or "
                                 f"team:NAME (team:sre)")
        return value

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
        if not self.databases and not self.discover:
            raise ValueError("databases: declare at least one database, or a {discover: ...} rule that finds them")
        for label, names in (("databases", [d.name for d in self.databases]),
                             ("regions", [r.name for r in self.regions])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{label}: duplicate name(s) {', '.join(dupes)}")
            # Resource keys, asset keys and check names use the identifier form: these would collide there.
            for a, b in itertools.combinations(sorted(names), 2):
                if identifier(a) == identifier(b):
                    raise ValueError(f"{label}: {a} and {b} are the same name once '-' becomes '_'; rename one")
        for a, b in itertools.combinations(self.regions, 2):
            if regions_overlap(a, b):
                raise ValueError(f"regions {a.name} and {b.name} overlap (the same or nested locations): a "
                                 f"replica there would be no copy at all; give each region its own place")
        unknown = sorted({s.database for s in self.queries.sources} - {d.name for d in self.databases})
        if unknown:
            raise ValueError(f"queries.sources: no database named {', '.join(unknown)} under databases")
        engines = {d.name: d.engine for d in self.databases}
        for source in self.queries.sources:
            if source.kind == "pg_stat_statements" and engines[source.database] != "postgres":
                raise ValueError(f"queries.sources: {source.database} is a {engines[source.database]} database; "
                                 f"pg_stat_statements is PostgreSQL's (use sqlite_jsonl for its query log)")
            if source.kind == "pg_stat_statements" and source.paths:
                raise ValueError(f"queries.sources: the pg_stat_statements source of {source.database} reads the "
                                 f"live server (its url_env), not files: drop 'paths'")
        if self.cache is not None:
            source = self.cache.source or next((d.name for d in self.databases if d.engine == "sqlite"), None)
            if source is None or engines.get(source) != "sqlite":
                raise ValueError(f"cache.source: {source!r} is not a configured SQLite database (the booking "
                                 f"database availability is computed from)")
        for label, named, known, what in (
                ("capacity.limits", self.capacity.limits, engines, "databases"),
                ("capacity.regions", self.capacity.regions, {r.name for r in self.regions}, "regions")):
            stray = sorted(set(named) - set(known))
            if stray:
                raise ValueError(f"{label}: {', '.join(stray)} not under {what} (use the configured names: "
                                 f"{', '.join(sorted(known))})")
        if self.restore.region and self.restore.region not in {r.name for r in self.regions}:
            raise ValueError(f"restore.region: {self.restore.region!r} is not one of the configured regions")
        if "point_in_time" in (self.drills.scenarios or []) and not self.continuous_protected:
            raise ValueError("drills.scenarios: point_in_time needs a continuous section that protects a database")
        if self.continuous is not None:
            for name in self.continuous.databases or []:
                if engines.get(name) != "sqlite":
                    raise ValueError(f"continuous.databases: {name!r} is not a declared SQLite database (Litestream "
                                     f"replicates SQLite; declared: {', '.join(sorted(engines)) or 'none'})")
            for name in self.continuous.postgres:
                if engines.get(name) != "postgres":
                    raise ValueError(f"continuous.postgres: {name!r} is not a declared PostgreSQL database (pgBackRest "
                                     f"archives PostgreSQL; declared: {', '.join(sorted(engines)) or 'none'})")
        return self

    @property
    def drill_scenarios(self) -> list[str]:
        """The DR drill's scenarios: as configured, else the snapshot ones and, with continuous protection,
        ``point_in_time``."""
        if self.drills.scenarios is not None:
            return list(self.drills.scenarios)
        return ["region_loss", "corrupt_latest", "database_loss",
                *(["point_in_time"] if self.continuous_protected else [])]

    @property
    def continuous_databases(self) -> list[DatabaseConfig]:
        """The SQLite databases Litestream replicates (none without a ``continuous`` section)."""
        if self.continuous is None:
            return []
        named = self.continuous.databases
        return [d for d in self.databases if d.engine == "sqlite" and (named is None or d.name in named)]

    @property
    def continuous_postgres(self) -> list[DatabaseConfig]:
        """The PostgreSQL databases whose cluster archives its WAL with pgBackRest (``continuous.postgres``)."""
        if self.continuous is None:
            return []
        return [d for d in self.databases if d.engine == "postgres" and d.name in self.continuous.postgres]

    @property
    def continuous_protected(self) -> list[DatabaseConfig]:
        """Every continuously protected database: Litestream's SQLite ones, then pgBackRest's PostgreSQL ones."""
        return [*self.continuous_databases, *self.continuous_postgres]

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
        """Every environment variable the file names: their values must never appear in an alert, a log or storage."""
        names = [self.backup.encryption.age_recipients_env, self.restore.age_identity_env,
                 self.restore.postgres_scratch_url_env, *(self.alerts.secret_variables() if self.alerts else [])]
        names += [d.url_env for d in self.databases] + [r.url_env for r in self.discover]
        names += list(self.releases.rollback_env) if self.releases else []
        names += [self.cache.redis_url_env] if self.cache else []
        names += [self.execution.celery.broker_url_env] if self.execution.celery else []
        for r in self.regions:
            names += r.secret_variables()
        return sorted({n for n in names if n})

    @property
    def restore_region(self) -> RegionConfig:
        """Where restore verification reads from: configured, else the last region (the DR path)."""
        return self.region(self.restore.region) if self.restore.region else self.regions[-1]

    @property
    def discovers(self) -> bool:
        """Whether the fleet is found (``discover`` rules) rather than only declared."""
        return bool(self.discover)

    def database(self, name: str) -> DatabaseConfig:
        for db in self.databases:
            if db.name == name:
                return db
        if self.discover:
            from ops_project.common.fleet import resolve  # noqa: PLC0415 - only a discovering configuration

            found = resolve(self.databases, self.discover, name)
            if found is not None:
                return found
        known = ", ".join(d.name for d in self.databases) or "none declared"
        found_by = "; nor does a discover rule find it now" if self.discover else ""
        raise UnknownNameError(f"{self.source}: no database named {name!r} (configured: {known}{found_by})")

    def region(self, name: str) -> RegionConfig:
        for region in self.regions:
            if region.name == name:
                return region
        known = ", ".join(r.name for r in self.regions)
        raise UnknownNameError(f"{self.source}: no region named {name!r} (configured: {known})")


def _is_rule(entry) -> bool:
    return isinstance(entry, dict) and "discover" in entry


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


def _as_written(loc: tuple, raw: dict) -> tuple:
    """``discover[i]`` (where the rules are validated) as the file has it: ``databases[j].discover``."""
    if len(loc) >= 2 and loc[0] == "discover" and isinstance(loc[1], int):
        entries = raw.get("databases") if isinstance(raw.get("databases"), list) else []
        at = [j for j, e in enumerate(entries) if _is_rule(e)]
        if loc[1] < len(at):
            return ("databases", at[loc[1]], "discover", *loc[2:])
    return loc


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
            if _is_rule(item) and isinstance(item["discover"], dict):
                fix(item["discover"], "glob")
    for section in ("backup", "restore"):
        if isinstance(raw.get(section), dict):
            fix(raw[section], "scratch_dir")
    if isinstance(raw.get("alerts"), dict):
        fix(raw["alerts"], "state_dir")
    continuous = raw.get("continuous")
    if isinstance(continuous, dict):
        continuous.setdefault("pgbackrest_dir", ".ops/pgbackrest")
        fix(continuous, "pgbackrest_dir")
        for cluster in (continuous.get("postgres") or {}).values() if isinstance(continuous.get("postgres"), dict) \
                else []:
            if isinstance(cluster, dict):
                for key in ("data_directory", "socket_dir", "bin_dir"):
                    fix(cluster, key)
    queries = raw.get("queries")
    for source in (queries.get("sources") or []) if isinstance(queries, dict) else []:
        if isinstance(source, dict) and isinstance(source.get("paths"), list):
            source["paths"] = [str(base / p) if isinstance(p, str) and not Path(p).expanduser().is_absolute()
                               else p for p in source["paths"]]
    releases = raw.get("releases")
    if isinstance(releases, dict) and isinstance(releases.get("repo"), str) and \
            "://" not in releases["repo"] and not releases["repo"].startswith("git@"):
        fix(releases, "repo")  # a local repository path, relative to the file


_LOADED: dict[Path, tuple[tuple[int, int, int], OpsConfig]] = {}


def load_config(path: str | os.PathLike | None = None) -> OpsConfig:
    """Load and validate the configuration; every error names the file and the key.

    Parsed once per process and file version: a run asks for it from every resource and step, and a fleet's
    file of a thousand databases took a noticeable part of a second each time. The models are frozen, so the one
    parsed value is shared; a changed file (size, mtime or inode) is parsed again."""
    file = config_path(path)
    try:
        st = file.stat()
        version = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        version = None  # read_text below says what is wrong
    cached = _LOADED.get(file)
    if version is not None and cached is not None and cached[0] == version:
        return cached[1]
    cfg = _parse(file)
    if version is not None:
        _LOADED[file] = (version, cfg)
    return cfg


def _parse(file: Path) -> OpsConfig:
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
                msg = "unknown key (check the spelling against README.md, \"Configuration\")"
            problems.append(f"{file}: {_loc(_as_written(err['loc'], raw))}: {msg}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
    return cfg.model_copy(update={"source": file})

