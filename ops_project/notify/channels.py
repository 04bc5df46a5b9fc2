"""The places an alert can go: a Slack-compatible webhook, PagerDuty Events API v2, e-mail over SMTP.

Each channel renders the alert its own way and ``deliver`` either succeeds or raises ``NotifyError``
(the notifier then keeps the alert in the outbox). Messages never carry a secret: the notifier scrubs
every alert before a channel sees it, and errors here name the channel, never its URL or key.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

from ops_project.common.errors import OpsError
from ops_project.notify.alert import Alert
from ops_project.notify.escape import header_line, slack_escape

ICONS = {"critical": ":rotating_light:", "error": ":x:", "warning": ":warning:"}
COLOURS = {"critical": "danger", "error": "danger", "warning": "warning"}


class NotifyError(OpsError):
    pass


class Channel(Protocol):
    name: str

    def deliver(self, alert: Alert) -> None: ...


def _post(name: str, url: str, body: dict, timeout: float, alert: Alert) -> None:
    import httpx  # only when an alert is sent: a tenth of a second off every code-location load

    try:
        resp = httpx.post(url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        raise NotifyError(f"{name} unreachable ({type(exc).__name__}); the alert '{alert.title}' waits in the "
                          f"outbox") from None
    if resp.status_code >= 300:
        raise NotifyError(f"{name} answered {resp.status_code}; the alert '{alert.title}' waits in the outbox")


class Slack:
    name = "slack"

    def __init__(self, webhook_url: str, *, timeout: float = 10):
        self.webhook_url = webhook_url
        self.timeout = timeout

    @staticmethod
    def payload(alert: Alert) -> dict:
        title, text = slack_escape(alert.title), slack_escape(alert.text)
        if alert.resolved:
            icon, colour, title = ":white_check_mark:", "good", f"Resolved: {title}"
        else:
            icon, colour = ICONS.get(alert.severity, ":x:"), COLOURS.get(alert.severity, "danger")
        link = f"\n<{alert.link}|Open the run in Dagster>" if alert.link else ""
        return {"text": f"{icon} *{title}*\n{text}{link}", "username": "ops_project",
                "attachments": [{"color": colour, "title": title, "title_link": alert.link or "", "text": text}]}

    def deliver(self, alert: Alert) -> None:
        _post("Slack webhook", self.webhook_url, self.payload(alert), self.timeout, alert)


class PagerDuty:
    """Events API v2: a trigger per open problem, a resolve with the same dedup key when it clears."""

    name = "pagerduty"

    def __init__(self, routing_key: str, events_url: str, *, source: str = "ops_project", timeout: float = 10):
        self.routing_key = routing_key
        self.events_url = events_url
        self.source = source
        self.timeout = timeout

    @staticmethod
    def dedup_key(alert: Alert) -> str:
        return "ops-" + hashlib.sha256(alert.key.encode()).hexdigest()[:40]

    def payload(self, alert: Alert) -> dict:
        body = {"routing_key": self.routing_key, "dedup_key": self.dedup_key(alert),
                "event_action": "resolve" if alert.resolved else "trigger"}
        if not alert.resolved:
            body["payload"] = {"summary": alert.title[:1024], "source": self.source,
                               "severity": alert.severity if alert.severity in ("critical", "error", "warning")
                               else "error",
                               "custom_details": {"details": alert.text[:8000], "problem": alert.key}}
            body["client"] = "ops_project"
            if alert.link:
                body["links"] = [{"href": alert.link, "text": "Open the run in Dagster"}]
        return body

    def deliver(self, alert: Alert) -> None:
        _post("PagerDuty Events API", self.events_url, self.payload(alert), self.timeout, alert)


class Email:
    name = "email"

    def __init__(self, host: str, port: int, sender: str, to: list[str], *, security: str = "starttls",
                 username: str | None = None, password: str | None = None, timeout: float = 10):
        self.host, self.port, self.sender, self.to = host, port, sender, list(to)
        self.security, self.username, self.password, self.timeout = security, username, password, timeout

    def message(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        status = "RESOLVED" if alert.resolved else alert.severity.upper()
        msg["Subject"] = header_line(f"[ops {status}] {alert.title}")
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        body = alert.text + (f"\n\nOpen the run in Dagster: {alert.link}" if alert.link else "")
        msg.set_content(("Resolved. " if alert.resolved else "") + body + f"\n\n(problem: {alert.key})\n")
        return msg

    def deliver(self, alert: Alert) -> None:
        try:
            if self.security == "ssl":
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                        context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(self.message(alert))
        except (OSError, smtplib.SMTPException) as exc:
            raise NotifyError(f"SMTP server {self.host}:{self.port} did not take the alert ({type(exc).__name__}); "
                              f"'{alert.title}' waits in the outbox") from None
