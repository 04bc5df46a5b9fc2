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


def render(title: str, checks: Sequence[Check], *, before: Sequence[str] = (), after: Sequence[str] = ()) -> str:
    """``### title``, optional lines, the check table (check | result | detail), optional lines."""
    lines = [f"### {title}", ""]
    if before:
        lines += [*before, ""]
    lines.append(table(["check", "result", "detail"],
                       [(c.name, "pass" if c.passed else "FAIL", c.message) for c in checks]))
    if after:
        lines += ["", *after]
    return "\n".join(lines)
