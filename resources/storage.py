"""One resource per region: its endpoint and credentials, resolved from ``EnvVar``s; the store comes from
the factory (``ops_project.clients``), exactly as the CLI gets it."""

from dagster import ConfigurableResource

from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.storage import ObjectStore


class RegionResource(ConfigurableResource):
    region: str
    config_path: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    def store(self) -> ObjectStore:
        cfg = load_config(self.config_path)
        region = cfg.region(self.region)
        resolved = {region.endpoint_url_env: self.endpoint_url, region.access_key_id_env: self.access_key_id,
                    region.secret_access_key_env: self.secret_access_key}
        return Clients(cfg, {k: v for k, v in resolved.items() if k and v}).store(region)
