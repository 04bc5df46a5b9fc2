"""Secrets out of every text we send, store or log: the values of the variables the configuration names.

One scrubber for alerts, errors, captured subprocess output and metadata. The factory
(``ops_project.clients``) remembers the secret values it resolves, so text scrubbed anywhere in the same
process (an ``OpsError`` message, a pg_restore error, a rollback script's output) loses them too, even
where the caller has no list of secrets at hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MIN_SECRET_LENGTH = 4
_remembered: set[str] = set()


def remember_secrets(values: Iterable[str]) -> None:
    """Scrub these values from every text this process scrubs from now on."""
    _remembered.update(v for v in values if v and len(v) >= MIN_SECRET_LENGTH)


def _forms(value: str) -> set[str]:
    """The value as it is, and as it appears inside a URL or a form (percent-encoded)."""
    return {value, quote(value, safe=""), quote_plus(value), quote(value)}


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every secret value (given or remembered, and their percent-encoded forms) with a marker."""
    values = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH} | _remembered
    if not values or not text:
        return text
    for form in sorted({f for v in values for f in _forms(v)}, key=len, reverse=True):
        text = text.replace(form, "[redacted]")
    return text
