"""Secrets out of every text we send, store or log: the values of the variables the configuration names."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MIN_SECRET_LENGTH = 4


def _forms(value: str) -> set[str]:
    """The value as it is, and as it appears inside a URL or a form (percent-encoded)."""
    return {value, quote(value, safe=""), quote_plus(value), quote(value)}


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value (and its percent-encoded forms) with a marker, longest first."""
    forms = {f for s in secrets if s and len(s) >= MIN_SECRET_LENGTH for f in _forms(s)}
    for value in sorted(forms, key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    return text
