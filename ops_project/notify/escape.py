"""Text we did not write (tag names, error messages) made inert for each channel."""

from __future__ import annotations


def slack_escape(text: str) -> str:
    """Slack's three control characters (https://api.slack.com/reference/surfaces/formatting#escaping):
    ``<!channel>``, ``<@U123>`` and ``<url|label>`` become plain text, so no tag name can ping anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def header_line(text: str, limit: int = 200) -> str:
    """One line fit for an e-mail header: no CR/LF (header injection), bounded."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
