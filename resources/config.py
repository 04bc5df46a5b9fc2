"""The configuration file as a resource (its path only: the file holds no secret)."""

from dagster import ConfigurableResource

from ops_project.config import OpsConfig, load_config


class OpsConfigResource(ConfigurableResource):
    path: str

    def load(self) -> OpsConfig:
        return load_config(self.path)
