"""Secrets out of every text we send: the values of the variables the configuration names."""

from __future__ import annotations

from collections.abc import Iterable


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value (and long enough substrings are the whole value) with a marker."""
    for value in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    return text
