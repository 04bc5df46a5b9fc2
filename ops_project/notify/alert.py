"""What an alert is: one problem (its key), said once when it opens and once when it clears."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ops_project.common.scrub import scrub


@dataclass(frozen=True)
class Alert:
    key: str  # the problem's identity: the same key is the same problem, whatever run saw it
    title: str
    text: str
    link: str | None = None
    severity: str = "error"  # critical | error | warning (alerts.routes decides where each goes)
    resolved: bool = False  # True: the problem has cleared

    def scrubbed(self, secrets: list[str]) -> Alert:
        return replace(self, key=scrub(self.key, secrets), title=scrub(self.title, secrets),
                       text=scrub(self.text, secrets),
                       link=scrub(self.link, secrets) if self.link else None)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> Alert:
        if not isinstance(doc, dict):
            raise ValueError("an alert must be a JSON object")
        alert = cls(key=str(doc["key"]), title=str(doc["title"]), text=str(doc["text"]),
                    link=None if doc.get("link") is None else str(doc["link"]),
                    severity=str(doc.get("severity", "error")), resolved=bool(doc.get("resolved", False)))
        return alert
