"""Databases and encryption keys for the backup assets: secrets resolved from ``EnvVar``s, clients from the
factory (``ops_project.clients``)."""

from dagster import ConfigurableResource

from ops_project.clients import Clients
from ops_project.config import load_config


def _only_set(resolved: dict) -> dict[str, str]:
    return {k: v for k, v in resolved.items() if k and v}


class DatabaseResource(ConfigurableResource):
    """One database. A PostgreSQL URL (it may hold a password) comes from an environment variable."""

    database: str
    config_path: str
    url: str | None = None
    scratch_server_url: str | None = None  # where restore verification creates throw-away databases

    def _clients(self) -> tuple[Clients, object]:
        cfg = load_config(self.config_path)
        db = cfg.database(self.database)
        return Clients(cfg, _only_set({db.url_env: self.url,
                                       cfg.restore.postgres_scratch_url_env: self.scratch_server_url})), db

    def prepare(self) -> str | None:
        """Generate a configured demo database on first use; return the PostgreSQL URL if any."""
        clients, db = self._clients()
        return clients.database_url(db)

    def server_for_scratch(self) -> str | None:
        clients, db = self._clients()
        return clients.scratch_server(db)


class EncryptionResource(ConfigurableResource):
    """age recipients (public keys) for backups and, for restores, the identity (the secret key)."""

    config_path: str
    recipients: str | None = None
    identity: str | None = None

    def _clients(self) -> Clients:
        cfg = load_config(self.config_path)
        return Clients(cfg, _only_set({cfg.backup.encryption.age_recipients_env: self.recipients,
                                       cfg.restore.age_identity_env: self.identity}))

    def parsed(self) -> list | None:
        return self._clients().recipients()

    def identities(self) -> list | None:
        return self._clients().identities()
