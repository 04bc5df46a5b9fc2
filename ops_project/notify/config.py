"""The ``alerts`` section: where alerts go (Slack, PagerDuty, email), by severity, and how often the same
problem may repeat.

Secrets (the webhook URL, the PagerDuty routing key, the SMTP password) are named by ``*_env`` keys and
read from the environment only when an alert is sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ops_project.common.config import Strict

Severity = Literal["critical", "error", "warning"]
Channel = Literal["slack", "pagerduty", "email"]
SEVERITIES: tuple[str, ...] = ("critical", "error", "warning")

# Page for data at risk, tell the team of failures, mention what we could not check.
DEFAULT_ROUTES: dict[str, list[str]] = {
    "critical": ["pagerduty", "slack", "email"],
    "error": ["slack", "email"],
    "warning": ["slack"],
}


class PagerDutyConfig(Strict):
    routing_key_env: str  # the integration's routing key (Events API v2): a secret
    events_url: str = "https://events.pagerduty.com/v2/enqueue"
    source: str = "ops_project"


class EmailConfig(Strict):
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    sender: str = Field(min_length=3)
    to: list[str] = Field(min_length=1)
    username_env: str | None = None
    password_env: str | None = None
    timeout_seconds: float = Field(10, gt=0)

    @model_validator(mode="after")
    def _security(self) -> EmailConfig:
        if self.security == "ssl" and self.port == 587:
            raise ValueError("security: ssl speaks TLS from the first byte (port 465); port 587 expects starttls")
        if self.security == "starttls" and self.port == 465:
            raise ValueError("port 465 expects security: ssl, not starttls")
        if self.security == "none" and (self.username_env or self.password_env) and \
                self.host not in ("localhost", "127.0.0.1", "::1"):  # a relay on this machine: nothing crosses a wire
            raise ValueError("a login over security: none would send the password in clear; use starttls or ssl")
        return self


class AlertsConfig(Strict):
    webhook_url_env: str | None = None  # Slack (or any Slack-compatible) incoming webhook
    pagerduty: PagerDutyConfig | None = None
    email: EmailConfig | None = None
    routes: dict[Severity, list[Channel]] = Field(default_factory=lambda: {k: list(v) for k, v in
                                                                           DEFAULT_ROUTES.items()})
    ui_base_url: str = "http://127.0.0.1:3000"  # for the run link in every alert
    dedup_hours: float = Field(24, gt=0)  # one alert per open problem per this many hours
    state_dir: Path | None = None  # open problems and the outbox (default: .ops/alerts beside the file)

    @model_validator(mode="after")
    def _routes(self) -> AlertsConfig:
        if "routes" in self.model_fields_set:
            for severity, channels in self.routes.items():
                for channel in channels:
                    if channel not in self.configured_channels():
                        raise ValueError(f"routes.{severity}: channel {channel!r} is not configured "
                                         f"(configure alerts.{'webhook_url_env' if channel == 'slack' else channel}"
                                         f" or remove it from the route)")
        return self

    def configured_channels(self) -> list[str]:
        return [name for name, on in (("slack", self.webhook_url_env), ("pagerduty", self.pagerduty),
                                      ("email", self.email)) if on]

    def channels_for(self, severity: str) -> list[str]:
        """The configured channels an alert of this severity goes to. A route that names none of the configured
        channels falls back to all of them: while any channel is configured, no alert goes nowhere."""
        configured = self.configured_channels()
        chosen = [c for c in self.routes.get(severity, []) if c in configured]
        return chosen or configured

    def secret_variables(self) -> list[str]:
        names = [self.webhook_url_env, self.pagerduty.routing_key_env if self.pagerduty else None]
        if self.email:
            names += [self.email.username_env, self.email.password_env]
        return [n for n in names if n]
