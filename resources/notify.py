"""The notifier resource: the webhook URL resolved from an ``EnvVar``, the notifier from the factory."""

from dagster import ConfigurableResource

from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.notify.notifier import Notifier


class NotifierResource(ConfigurableResource):
    """Alerts to the webhook whose URL the variable ``alerts.webhook_url_env`` names (Slack-compatible)."""

    config_path: str
    webhook_url: str | None = None

    def _clients(self) -> Clients:
        cfg = load_config(self.config_path)
        var = cfg.alerts.webhook_url_env if cfg.alerts else None
        return Clients(cfg, {var: self.webhook_url} if var and self.webhook_url else {})

    def get(self) -> Notifier:
        return self._clients().notifier()

    def run_link(self, run_id: str) -> str:
        return self._clients().run_link(run_id)
