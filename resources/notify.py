"""The notifier resource: each alert channel's secret resolved from an ``EnvVar``, the notifier from the factory."""

from dagster import ConfigurableResource

from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.notify.notifier import Notifier


class NotifierResource(ConfigurableResource):
    """Alerts to the channels ``alerts`` configures (Slack webhook, PagerDuty, e-mail), routed by severity."""

    config_path: str
    webhook_url: str | None = None
    pagerduty_routing_key: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = None

    def _clients(self) -> Clients:
        cfg = load_config(self.config_path)
        alerts = cfg.alerts
        env: dict[str, str] = {}
        if alerts:
            for var, value in ((alerts.webhook_url_env, self.webhook_url),
                               (alerts.pagerduty.routing_key_env if alerts.pagerduty else None,
                                self.pagerduty_routing_key),
                               (alerts.email.username_env if alerts.email else None, self.smtp_username),
                               (alerts.email.password_env if alerts.email else None, self.smtp_password)):
                if var and value:
                    env[var] = value
        return Clients(cfg, env)

    def get(self) -> Notifier:
        return self._clients().notifier()

    def run_link(self, run_id: str) -> str:
        return self._clients().run_link(run_id)
