"""PostgreSQL's ``log_line_prefix`` as a regular expression, so that stderr logs of any prefix can be read.

Each escape becomes a pattern for what the server writes there; the ones that identify a line's session (``%c``
session id, ``%p`` process id) and its time (``%m``, ``%t``, ``%n``) are named groups. ``%q`` ends the part
that non-session processes (checkpointer, autovacuum) leave out: everything after it is optional.
"""

from __future__ import annotations

import re

from ops_project.common.errors import ConfigError

DEFAULT_PREFIX = "%m [%p] "  # PostgreSQL's own default since 10
_TS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
_ZONE = r"(?: [A-Za-z0-9+\-:/_]+)?"
ESCAPES = {
    "m": rf"(?P<ts>{_TS}\.\d+{_ZONE})",
    "t": rf"(?P<ts>{_TS}{_ZONE})",
    "n": r"(?P<epoch>\d+\.\d+)",
    "s": rf"{_TS}{_ZONE}",
    "p": r"(?P<pid>\d+)",
    "P": r"\d*",
    "c": r"(?P<session>[0-9a-f]+\.[0-9a-f]+)",
    "l": r"\d+",
    "u": r"(?P<user>[^\s@]*?)",  # "[unknown]" on connection lines
    "d": r"(?P<db>[^\s@]*?)",
    "a": r".*?",
    "r": r"\S*?",
    "h": r"\S*?",
    "b": r".*?",
    "i": r".*?",
    "e": r"[0-9A-Z]{5}",
    "v": r"\S*?",
    "x": r"\d+",
    "Q": r"-?\d+",
}
SEVERITY = (r"(?P<severity>DEBUG[1-5]|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC|DETAIL|HINT|QUERY|CONTEXT"
            r"|STATEMENT|LOCATION)")


def prefix_regex(prefix: str) -> re.Pattern[str]:
    """The pattern of a log line's start: the prefix, then ``SEVERITY:  ``; the rest is the message."""
    out, optional, seen, i = [], False, set(), 0
    while i < len(prefix):
        ch = prefix[i]
        if ch != "%":
            out.append(re.escape(ch))
            i += 1
            continue
        if i + 1 >= len(prefix):
            raise ConfigError(f"log_line_prefix {prefix!r} ends with a lone '%'")
        esc = prefix[i + 1]
        i += 2
        if esc.isdigit() or esc == "-":  # padding, as in %-10u or %5p: the width is not needed to read it
            while i < len(prefix) and prefix[i].isdigit():
                i += 1
            if i >= len(prefix):
                raise ConfigError(f"log_line_prefix {prefix!r}: padding without an escape at the end")
            esc = prefix[i]
            i += 1
            out.append(r"\s*")
        if esc == "%":
            out.append("%")
        elif esc == "q":
            out.append("(?:")
            optional = True
        elif esc in ESCAPES:
            pattern = ESCAPES[esc]
            for name in re.findall(r"\?P<(\w+)>", pattern):  # a repeated escape: the same thing, unnamed
                if name in seen:
                    pattern = pattern.replace(f"?P<{name}>", "?:")
                seen.add(name)
            out.append(pattern)
            if esc in "pc":
                out.append(r"\s*")  # padded process ids
        else:
            raise ConfigError(f"log_line_prefix {prefix!r}: unknown escape %{esc}")
    if optional:
        out.append(")?")
    if not seen & {"pid", "session"}:
        raise ConfigError(f"log_line_prefix {prefix!r} has neither %p nor %c: statements and their durations "
                          f"cannot be joined by session; add %p (or %c) to the server's log_line_prefix")
    if not seen & {"ts", "epoch"}:
        raise ConfigError(f"log_line_prefix {prefix!r} has no timestamp (%m, %t or %n): add one to the server's "
                          f"log_line_prefix")
    return re.compile("^" + "".join(out) + SEVERITY + r":  (?P<msg>.*)$", re.DOTALL)
