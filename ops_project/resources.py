"""Configuration → Dagster resources. Secrets enter here as ``EnvVar`` and nowhere else.

``ops.yaml`` names the environment variables; ``build_resources`` turns each name into an
``EnvVar`` field, which Dagster resolves when a run starts and shows in the UI only by name.
"""


import os

from dagster import ConfigurableResource, EnvVar

from ops_project.config import AlertsConfig, OpsConfig, load_config
from ops_project.demo.database import ensure as ensure_demo
from ops_project.notify import Notifier
from ops_project.pipeline import parse_recipients
from ops_project.restore import parse_identities
from ops_project.storage import ObjectStore, S3Credentials, open_store


def region_key(name: str) -> str:
    return "region_" + name.replace("-", "_")


def database_key(name: str) -> str:
    return "database_" + name.replace("-", "_")


class OpsConfigResource(ConfigurableResource):
    """The configuration file (its path; the file holds no secret)."""

    path: str

    def load(self) -> OpsConfig:
        return load_config(self.path)


class RegionResource(ConfigurableResource):
    """One storage region. Credentials and endpoint come from environment variables."""

    region: str
    config_path: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def store(self) -> ObjectStore:
        cfg = load_config(self.config_path)
        region = cfg.region(self.region)
        creds = S3Credentials(self.endpoint_url or region.endpoint_url, self.access_key_id, self.secret_access_key)
        return open_store(region, creds, part_size=cfg.backup.part_size_mb << 20)


class DatabaseResource(ConfigurableResource):
    """One database. A PostgreSQL URL (it may hold a password) comes from an environment variable."""

    database: str
    config_path: str
    url: str | None = None
    scratch_server_url: str | None = None  # where restore verification creates throw-away databases

    def server_for_scratch(self) -> str | None:
        return self.scratch_server_url or self.url

    def prepare(self) -> str | None:
        """Generate a configured demo database on first use; return the PostgreSQL URL if any."""
        db = load_config(self.config_path).database(self.database)
        if db.engine == "sqlite" and db.demo_size_mb and db.path is not None:
            ensure_demo(db.path, db.demo_size_mb)
        return self.url


class EncryptionResource(ConfigurableResource):
    """age recipients (public keys) for backups and, for restores, the identity (the secret key)."""

    recipients: str | None = None
    source: str = "backup.encryption.age_recipients_env"
    identity: str | None = None
    identity_source: str = "restore.age_identity_env"

    def parsed(self) -> list | None:
        return parse_recipients(self.recipients, source=self.source) if self.recipients else None

    def identities(self) -> list | None:
        return parse_identities(self.identity, source=self.identity_source) if self.identity else None


class NotifierResource(ConfigurableResource):
    """Alerts to the webhook whose URL the variable ``alerts.webhook_url_env`` names (Slack-compatible)."""

    config_path: str
    webhook_url: str | None = None

    def get(self) -> Notifier:
        cfg = load_config(self.config_path)
        alerts = cfg.alerts or AlertsConfig()
        state = alerts.state_dir or (cfg.source.parent / ".ops" / "alerts")
        secrets = [os.environ.get(name, "") for name in cfg.secret_variables()]
        return Notifier(self.webhook_url, state, dedup_hours=alerts.dedup_hours, secrets=secrets)

    def run_link(self, run_id: str) -> str:
        cfg = load_config(self.config_path)
        base = (cfg.alerts or AlertsConfig()).ui_base_url.rstrip("/")
        return f"{base}/runs/{run_id}"


def _env(name: str | None):
    return EnvVar(name) if name else None


def build_resources(cfg: OpsConfig) -> dict[str, ConfigurableResource]:
    path = str(cfg.source)
    resources: dict[str, ConfigurableResource] = {"ops_config": OpsConfigResource(path=path)}
    for region in cfg.regions:
        resources[region_key(region.name)] = RegionResource(
            region=region.name, config_path=path, endpoint_url=_env(region.endpoint_url_env),
            access_key_id=_env(region.access_key_id_env), secret_access_key=_env(region.secret_access_key_env))
    for db in cfg.databases:
        resources[database_key(db.name)] = DatabaseResource(
            database=db.name, config_path=path, url=_env(db.url_env),
            scratch_server_url=_env(cfg.restore.postgres_scratch_url_env))
    resources["notifier"] = NotifierResource(
        config_path=path, webhook_url=_env(cfg.alerts.webhook_url_env if cfg.alerts else None))
    var, ivar = cfg.backup.encryption.age_recipients_env, cfg.restore.age_identity_env
    resources["encryption"] = EncryptionResource(
        recipients=_env(var), source=f"environment variable {var}",
        identity=_env(ivar), identity_source=f"environment variable {ivar}")
    return resources
