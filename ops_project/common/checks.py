"""The check/verdict type every domain reports with: a named verdict, its reason and its numbers.

Restore verification, deploy validation and (later) every other pipeline answer with a list of
``Check``; ``render`` turns a titled list into the markdown the UI and the CLI show.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from ops_project.common.markdown import table


class Outcome(StrEnum):
    """What a verdict says: the thing checked passed, failed (its own fault: conclusive), or could not be
    judged because our environment failed (region unreachable, scratch full, key missing): inconclusive."""

    PASSED = "passed"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"


@dataclass
class Check:
    name: str
    passed: bool
    message: str
    metadata: dict = field(default_factory=dict)
    blocking: bool = True  # a failed blocking check fails the verdict; a non-blocking one only warns


def all_passed(checks: Iterable[Check]) -> bool:
    """The verdict of a list of checks: every blocking check passed."""
    return all(c.passed for c in checks if c.blocking)


def failure_summary(checks: Iterable[Check]) -> str:
    """Every distinct failure once, in the order first met: ``a, b: why; c: why else``.

    One cause (a corrupt object) often fails many checks with the same words; saying it once per check buries
    it, and the report no longer fits the page.
    """
    groups: dict[str, list[str]] = {}
    for c in checks:
        if not c.passed:
            groups.setdefault(c.message, []).append(c.name)
    return "; ".join(f"{', '.join(names)}: {message}" for message, names in groups.items())


def render(title: str, checks: Sequence[Check], *, before: Sequence[str] = (), after: Sequence[str] = ()) -> str:
    """``### title``, optional lines, the check table (check | result | detail), optional lines. A detail
    already shown for an earlier check reads "same as <that check>", so that each error appears once."""
    lines = [f"### {title}", ""]
    if before:
        lines += [*before, ""]
    first_with: dict[str, str] = {}
    rows = []
    for c in checks:
        shown = first_with.setdefault(c.message, c.name)
        rows.append((c.name, "pass" if c.passed else "FAIL", c.message if shown == c.name else f"same as {shown}"))
    lines.append(table(["check", "result", "detail"], rows))
    if after:
        lines += ["", *after]
    return "\n".join(lines)
