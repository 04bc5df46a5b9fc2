"""The databases and encryption keys for the backup assets: secrets resolved from ``EnvVar``s, clients from the
factory (``ops_project.clients``)."""

from dagster import ConfigurableResource

from ops_project.clients import Clients
from ops_project.config import load_config


def _only_set(resolved: dict) -> dict[str, str]:
    return {k: v for k, v in resolved.items() if k and v}


class DatabasesResource(ConfigurableResource):
    """Every configured database, in one resource: a fleet of a thousand tenants is one resource, not a thousand
    (each one repeated its config schema in every job's snapshot). A PostgreSQL URL (it may hold a password)
    comes from the environment variable its ``url_env`` names, as an ``EnvVar`` value of ``urls``, which Dagster
    resolves when a run starts and shows in the UI by name only."""

    config_path: str
    urls: dict[str, str] = {}  # database name → its URL (EnvVar of the database's url_env)
    servers: dict[str, str] = {}  # a postgres discover rule's url_env → its server's URL (EnvVar)
    scratch_server_url: str | None = None  # where restore verification creates throw-away databases

    def _clients(self, database: str) -> tuple[Clients, object]:
        cfg = load_config(self.config_path)
        db = cfg.database(database)
        env = {db.url_env: self.urls.get(database) or self.servers.get(db.url_env or ""),
               cfg.restore.postgres_scratch_url_env: self.scratch_server_url}
        return Clients(cfg, _only_set(env)), db

    def prepare(self, database: str) -> str | None:
        """Generate a configured demo database on first use; return the PostgreSQL URL if any."""
        clients, db = self._clients(database)
        return clients.database_url(db)

    def server_for_scratch(self, database: str) -> str | None:
        clients, db = self._clients(database)
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
