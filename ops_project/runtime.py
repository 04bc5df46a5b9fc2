"""Turning configuration into working parts when Dagster is not there to do it (the CLI path).

Dagster resolves the same secrets through ``EnvVar`` in ``ops_project/resources.py``; both paths
end in the same calls (``open_store``, ``take_backup``, ``replicate``).
"""

from __future__ import annotations

from collections.abc import Mapping

from ops_project.config import DatabaseConfig, OpsConfig, RegionConfig, secret
from ops_project.demo.database import ensure as ensure_demo
from ops_project.pipeline import parse_recipients
from ops_project.restore import parse_identities
from ops_project.storage import ObjectStore, credentials_from_env, open_store


def store_for(cfg: OpsConfig, region: RegionConfig, env: Mapping[str, str] | None = None) -> ObjectStore:
    return open_store(region, credentials_from_env(region, env), part_size=cfg.backup.part_size_mb << 20)


def recipients_for(cfg: OpsConfig, env: Mapping[str, str] | None = None) -> list | None:
    var = cfg.backup.encryption.age_recipients_env
    text = secret(var, what="backup.encryption.age_recipients_env", env=env)
    return parse_recipients(text, source=f"environment variable {var}") if text else None


def identities_for(cfg: OpsConfig, env: Mapping[str, str] | None = None) -> list | None:
    var = cfg.restore.age_identity_env
    text = secret(var, what="restore.age_identity_env", env=env) if var else None
    return parse_identities(text, source=f"environment variable {var}") if text else None


def scratch_server_for(cfg: OpsConfig, db: DatabaseConfig, env: Mapping[str, str] | None = None) -> str | None:
    if db.engine != "postgres":
        return None
    var = cfg.restore.postgres_scratch_url_env
    return secret(var, what="restore.postgres_scratch_url_env", env=env) if var else prepare_database(db, env)


def prepare_database(db: DatabaseConfig, env: Mapping[str, str] | None = None) -> str | None:
    """Generate a configured demo database on first use; return the PostgreSQL URL if any."""
    if db.engine == "sqlite":
        if db.demo_size_mb and db.path is not None:
            ensure_demo(db.path, db.demo_size_mb)
        return None
    return secret(db.url_env, what=f"databases.{db.name}.url_env", env=env)
