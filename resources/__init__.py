"""Configuration → Dagster resources. Secrets enter here as ``EnvVar`` and nowhere else.

``ops.yaml`` names the environment variables; ``build_resources`` turns each name into an
``EnvVar`` field, which Dagster resolves when a run starts and shows in the UI only by name.
Resources hold only those resolved values and call the one factory, ``ops_project.clients``.
"""

import os

from dagster import ConfigurableResource, EnvVar

from ops_project.common.names import identifier
from ops_project.config import OpsConfig
from resources.backups import DatabasesResource, EncryptionResource
from resources.cache import CacheResource
from resources.config import OpsConfigResource
from resources.notify import NotifierResource
from resources.storage import RegionResource

__all__ = ["CacheResource", "DatabasesResource", "EncryptionResource", "NotifierResource", "OpsConfigResource",
           "RegionResource", "build_resources", "region_key"]


def region_key(name: str) -> str:
    return "region_" + identifier(name)


def _env(name: str | None):
    return EnvVar(name) if name else None


def build_resources(cfg: OpsConfig) -> dict[str, ConfigurableResource]:
    path = str(cfg.source)
    resources: dict[str, ConfigurableResource] = {"ops_config": OpsConfigResource(path=path)}
    for region in cfg.regions:
        resources[region_key(region.name)] = RegionResource(
            region=region.name, config_path=path, endpoint_url=_env(region.endpoint_url_env),
            access_key_id=_env(region.access_key_id_env), secret_access_key=_env(region.secret_access_key_env))
    resources["databases"] = DatabasesResource(
        config_path=path, urls={db.name: EnvVar(db.url_env) for db in cfg.databases if db.url_env},
        servers={rule.url_env: EnvVar(rule.url_env) for rule in cfg.discover if rule.url_env},
        scratch_server_url=_env(cfg.restore.postgres_scratch_url_env))
    alerts = cfg.alerts
    resources["notifier"] = NotifierResource(
        config_path=path, webhook_url=_env(alerts.webhook_url_env if alerts else None),
        pagerduty_routing_key=_env(alerts.pagerduty.routing_key_env if alerts and alerts.pagerduty else None),
        smtp_username=_env(alerts.email.username_env if alerts and alerts.email else None),
        smtp_password=_env(alerts.email.password_env if alerts and alerts.email else None))
    resources["encryption"] = EncryptionResource(
        config_path=path, recipients=_env(cfg.backup.encryption.age_recipients_env),
        identity=_env(cfg.restore.age_identity_env))
    if cfg.cache is not None:
        var = cfg.cache.redis_url_env
        # optional: without the variable the warm-up says there is no Redis (an unset EnvVar fails every run)
        resources["cache"] = CacheResource(config_path=path, redis_url=EnvVar(var) if var and os.environ.get(var)
                                           else None)
    return resources
