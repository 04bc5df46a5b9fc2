"""The one factory: configuration → working clients, for the CLI and for Dagster alike.

``env`` maps environment-variable names to values. The CLI passes ``os.environ``; a Dagster
resource passes the values its ``EnvVar`` fields resolved, keyed by the variable names the
configuration gives. Either way the same code turns them into stores, database handles,
encryption keys and the notifier, and a missing variable is the same clear error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ops_project.backups.encryption import parse_identities, parse_recipients
from ops_project.common.config import DatabaseConfig, secret
from ops_project.common.errors import ConfigError
from ops_project.common.pgurl import with_dbname
from ops_project.common.scrub import remember_secrets
from ops_project.config import OpsConfig
from ops_project.demo.database import ensure as ensure_demo
from ops_project.notify.channels import Email, PagerDuty, Slack
from ops_project.notify.config import AlertsConfig
from ops_project.notify.notifier import Notifier
from ops_project.storage import ObjectStore, S3Credentials, open_store
from ops_project.storage.config import RegionConfig


class Clients:
    def __init__(self, cfg: OpsConfig, env: Mapping[str, str] | None = None):
        self.cfg = cfg
        self.env = os.environ if env is None else env
        self.secret_values()  # remembered by the scrubber before any client can fail with one in its message

    def _secret(self, var: str | None, what: str) -> str | None:
        value = secret(var, what=what, env=self.env)
        if value:
            remember_secrets([value])
        return value

    # storage ------------------------------------------------------------------------------------
    def credentials(self, region: RegionConfig) -> S3Credentials:
        where = f"regions.{region.name}"
        return S3Credentials(
            endpoint_url=self._secret(region.endpoint_url_env, f"{where}.endpoint_url_env") or region.endpoint_url,
            access_key_id=self._secret(region.access_key_id_env, f"{where}.access_key_id_env"),
            secret_access_key=self._secret(region.secret_access_key_env, f"{where}.secret_access_key_env"),
        )

    def store(self, region: RegionConfig | str) -> ObjectStore:
        region = self.cfg.region(region) if isinstance(region, str) else region
        creds = self.credentials(region) if region.kind == "s3" else None
        return open_store(region, creds, part_size=self.cfg.backup.part_size)

    # databases ----------------------------------------------------------------------------------
    def database_url(self, db: DatabaseConfig) -> str | None:
        """Generate a configured demo database on first use; the PostgreSQL URL, if any."""
        if db.engine == "sqlite":
            if db.demo_size_mb and db.path is not None:
                ensure_demo(db.path, db.demo_size_mb)
            return None
        url = self._secret(db.url_env, f"databases.{db.name}.url_env")
        return with_dbname(url, db.dbname) if db.dbname else url

    def scratch_server(self, db: DatabaseConfig) -> str | None:
        """The PostgreSQL server restore tests and drills create throw-away databases on:
        ``restore.postgres_scratch_url_env``; the source (production) server only when the configuration
        says so explicitly (``restore.scratch_on_source: true``)."""
        if db.engine != "postgres":
            return None
        var = self.cfg.restore.postgres_scratch_url_env
        if var:
            return self._secret(var, "restore.postgres_scratch_url_env")
        if self.cfg.restore.scratch_on_source:
            return self.database_url(db)
        raise ConfigError(f"{self.cfg.source}: restoring database {db.name} needs a PostgreSQL server for "
                          f"throw-away databases: set restore.postgres_scratch_url_env (recommended), or "
                          f"restore.scratch_on_source: true to create them on {db.name}'s own, production server")

    # cache ------------------------------------------------------------------------------------
    def redis_url(self) -> str | None:
        """The Redis URL ``cache.redis_url_env`` names, or None when it is not set (no Redis to warm)."""
        cache = self.cfg.cache
        if cache is None or not cache.redis_url_env:
            return None
        try:
            return self._secret(cache.redis_url_env, "cache.redis_url_env")
        except ConfigError:
            return None

    def cache_source(self) -> DatabaseConfig:
        """The booking database availability is computed from (generated first, if it is the demo's)."""
        cache = self.cfg.cache
        db = self.cfg.database(cache.source) if cache and cache.source else next(
            d for d in self.cfg.databases if d.engine == "sqlite")
        self.database_url(db)
        return db

    # encryption ---------------------------------------------------------------------------------
    def recipients(self) -> list | None:
        var = self.cfg.backup.encryption.age_recipients_env
        text = self._secret(var, "backup.encryption.age_recipients_env")
        return parse_recipients(text, source=f"environment variable {var}") if text else None

    def identities(self) -> list | None:
        var = self.cfg.restore.age_identity_env
        text = self._secret(var, "restore.age_identity_env")
        return parse_identities(text, source=f"environment variable {var}") if text else None

    # alerts -------------------------------------------------------------------------------------
    @property
    def alerts(self) -> AlertsConfig:
        return self.cfg.alerts or AlertsConfig()

    def secret_values(self) -> list[str]:
        """The value of every variable the configuration names: scrubbed from alerts and captured output."""
        values = {source.get(name, "") for name in self.cfg.secret_variables() for source in (self.env, os.environ)}
        found = sorted(v for v in values if v)
        remember_secrets(found)
        return found

    def notifier(self) -> Notifier:
        """Every configured channel (Slack webhook, PagerDuty, e-mail), routed by severity; every value of every
        variable the configuration names is scrubbed from every alert."""
        alerts = self.alerts
        state = alerts.state_dir or (self.cfg.source.parent / ".ops" / "alerts")
        channels: list = []
        url = self._secret(alerts.webhook_url_env, "alerts.webhook_url_env")
        if url:
            channels.append(Slack(url))
        if alerts.pagerduty:
            pd = alerts.pagerduty
            channels.append(PagerDuty(self._secret(pd.routing_key_env, "alerts.pagerduty.routing_key_env"),
                                      pd.events_url, source=pd.source))
        if alerts.email:
            mail = alerts.email
            channels.append(Email(mail.host, mail.port, mail.sender, mail.to, security=mail.security,
                                  username=self._secret(mail.username_env, "alerts.email.username_env"),
                                  password=self._secret(mail.password_env, "alerts.email.password_env"),
                                  timeout=mail.timeout_seconds))
        return Notifier(channels, state, route=alerts.channels_for, dedup_hours=alerts.dedup_hours,
                        secrets=self.secret_values())

    def run_link(self, run_id: str) -> str:
        return f"{self.alerts.ui_base_url.rstrip('/')}/runs/{run_id}"
