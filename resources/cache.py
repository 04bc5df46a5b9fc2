"""Redis for ``cache_warmup``: its URL (it may hold a password) from the variable ``cache.redis_url_env`` names."""

from dagster import ConfigurableResource

from ops_project.config import load_config


class CacheResource(ConfigurableResource):
    config_path: str
    redis_url: str | None = None  # None: the variable was not set where the code location loaded

    def client(self):
        """A connected client, or None when no Redis URL is set; a CacheError when it cannot be used."""
        from ops_project.cache.redis_client import connect
        from ops_project.common.scrub import remember_secrets

        if not self.redis_url:
            return None
        remember_secrets([self.redis_url])
        return connect(self.redis_url)

    def source_path(self):
        from ops_project.clients import Clients

        return Clients(load_config(self.config_path)).cache_source().path
