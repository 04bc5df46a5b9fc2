"""Secrets out of every text we send, store or log: the values of the variables the configuration names.

One scrubber for alerts, errors, captured subprocess output and metadata. The factory
(``ops_project.clients``) remembers the secret values it resolves, so text scrubbed anywhere in the same
process (an ``OpsError`` message, a pg_restore error, a rollback script's output) loses them too, even
where the caller has no list of secrets at hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus, unquote, urlsplit

MIN_SECRET_LENGTH = 4
_remembered: set[str] = set()


def remember_secrets(values: Iterable[str]) -> None:
    """Scrub these values from every text this process scrubs from now on."""
    _remembered.update(p for v in values if v for p in _parts(v))


def _parts(value: str) -> set[str]:
    """The value, its lines (an age-keygen file holds comments and one key line), and a URL's password."""
    parts = {value, value.strip()}
    parts |= {line.strip() for line in value.splitlines() if not line.strip().startswith("#")}
    try:
        password = urlsplit(value.strip()).password
    except ValueError:
        password = None
    if password:
        parts |= {password, unquote(password)}
    return {p for p in parts if len(p) >= MIN_SECRET_LENGTH}


def _forms(value: str) -> set[str]:
    """Each part as it is, percent-encoded (inside a URL or a form), and escaped inside JSON."""
    out = set()
    for part in _parts(value):
        out |= {part, quote(part, safe=""), quote_plus(part), quote(part), json.dumps(part)[1:-1]}
    return out


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every secret value (given or remembered, and their percent-encoded forms) with a marker."""
    values = {p for s in secrets if s for p in _parts(s)} | _remembered
    if not values or not text:
        return text
    for form in sorted({f for v in values for f in _forms(v)}, key=len, reverse=True):
        text = text.replace(form, "[redacted]")
    return text
