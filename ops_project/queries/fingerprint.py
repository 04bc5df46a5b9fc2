"""One fingerprint space for every statement: the same query shape gets the same fingerprint, whatever its
literals, its ``$n`` parameters, the length of its IN lists or its table aliases.

- PostgreSQL: the real PostgreSQL parser (``pglast``, libpg_query): aliases renamed canonically on the parse
  tree, then libpg_query's own fingerprint (constants, parameters and IN-list lengths ignored).
- SQLite / D1: a ``sqlglot`` normaliser (literals and ``?`` → placeholders, IN lists folded, aliases renamed).
- A statement that does not parse still gets a group, by its normalised text (``text:`` fingerprints), never
  dropped.

Parsing is the cost, so results are cached by a cheap pre-normalised key (literals and numbers replaced by a
regular expression): the many calls of one query shape parse once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

Dialect = Literal["postgres", "sqlite"]

_DOLLAR = re.compile(r"(\$\w*\$).*?\1", re.DOTALL)  # $$…$$ and $tag$…$tag$ strings
_ESTRING = re.compile(r"[Ee]'(?:[^'\\]|\\.|'')*'")  # E'…' strings, where a backslash escapes a quote
_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w$.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", re.I)
_PARAM = re.compile(r"\$\d+|\?\d*|:\w+")
_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)")
_SPACE = re.compile(r"\s+")
_DISPLAY_LIST = re.compile(r"\(\s*\$\d+(?:\s*,\s*\$\d+)+\s*\)")
CACHE_SIZE = 50_000


@dataclass(frozen=True)
class Fingerprint:
    id: str  # 16 hex digits; "text:…" when the statement did not parse
    query: str  # the normalised statement shown in reports (no literal)
    parsed: bool


# one left-to-right pass for every literal and parameter (a quote inside a $$ string is not a string's); the
# lookahead on their first characters spares trying five alternatives at every position (twice as fast)
_LITERALS = re.compile("(?=[$'Ee?:\\d-])(?:" + "|".join(f"(?:{p.pattern})" for p in (
    _DOLLAR, _ESTRING, _STRING, _PARAM, _NUMBER)) + ")", re.DOTALL | re.I)


def cheap_key(sql: str) -> str:
    """Literals, numbers and parameters replaced, lists folded, blanks collapsed: one key per query shape."""
    key = _LITERALS.sub("?", sql)
    if "(?" in key or "( ?" in key:
        key = _LIST.sub("(?)", key)
    return " ".join(key.split()).rstrip(";").strip().lower()


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _unparsed(sql: str) -> Fingerprint:
    text = cheap_key(sql)
    return Fingerprint("text:" + _digest(text), text, False)


def _canonical_aliases_pg(sql: str) -> str | None:
    """``sql`` deparsed with every table alias renamed t1, t2 … in order of appearance (None: does not parse)."""
    from pglast import parse_sql
    from pglast.ast import Alias, ColumnRef, RangeSubselect, RangeVar, String
    from pglast.stream import RawStream
    from pglast.visitors import Visitor

    try:
        tree = parse_sql(sql)
    except Exception:  # noqa: BLE001 - pglast raises its own ParseError, and more for odd input
        return None
    names: dict[str, str] = {}

    class Aliases(Visitor):
        def visit_RangeVar(self, _ancestors, node: RangeVar):  # noqa: N802 - pglast's visitor naming
            if node.alias is not None and node.alias.aliasname:
                names.setdefault(node.alias.aliasname, f"t{len(names) + 1}")

        def visit_RangeSubselect(self, _ancestors, node: RangeSubselect):  # noqa: N802
            if node.alias is not None and node.alias.aliasname:
                names.setdefault(node.alias.aliasname, f"t{len(names) + 1}")

    class Rename(Visitor):
        def visit_Alias(self, _ancestors, node: Alias):  # noqa: N802
            if node.aliasname in names:
                return Alias(aliasname=names[node.aliasname], colnames=node.colnames)
            return None

        def visit_ColumnRef(self, _ancestors, node: ColumnRef):  # noqa: N802
            fields = list(node.fields or ())
            if len(fields) > 1 and isinstance(fields[0], String) and fields[0].sval in names:
                fields[0] = String(sval=names[fields[0].sval])
                return ColumnRef(fields=tuple(fields), location=node.location)
            return None

    try:
        Aliases()(tree)
        if names:
            Rename()(tree)
        return RawStream()(tree)
    except Exception:  # noqa: BLE001 - a tree the deparser cannot print: fingerprint the text as it is
        return sql


def postgres(sql: str) -> Fingerprint:
    from pglast.parser import fingerprint as pg_fingerprint
    from pglast.parser import normalize

    canonical = _canonical_aliases_pg(sql)
    if canonical is None:
        return _unparsed(sql)
    try:
        fid = pg_fingerprint(canonical)
        shown = normalize(sql)
    except Exception:  # noqa: BLE001
        return _unparsed(sql)
    shown = _DISPLAY_LIST.sub("(...)", _SPACE.sub(" ", shown).strip())
    return Fingerprint(fid, shown, True)


def sqlite(sql: str) -> Fingerprint:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:  # noqa: BLE001 - sqlglot's ParseError / TokenError
        return _unparsed(sql)
    if tree is None:
        return _unparsed(sql)
    names: dict[str, str] = {}
    for alias in tree.find_all(exp.TableAlias):
        if alias.name:
            names.setdefault(alias.name, f"t{len(names) + 1}")

    def normal(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Literal | exp.Placeholder | exp.Parameter):
            return exp.Placeholder()
        if isinstance(node, exp.TableAlias) and node.name in names:
            return exp.TableAlias(this=exp.to_identifier(names[node.name]))
        if isinstance(node, exp.Column) and node.table in names:
            return exp.column(node.name, table=names[node.table])
        return node

    def fold(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.In) and node.expressions:
            return exp.In(this=node.this, expressions=[exp.Placeholder()])
        return node

    try:
        text = tree.transform(normal).transform(fold).sql(dialect="sqlite")
    except Exception:  # noqa: BLE001
        return _unparsed(sql)
    return Fingerprint(_digest(text.lower()), text, True)


class Fingerprinter:
    """Fingerprints for one dialect, cached by ``cheap_key`` (bounded: a flood of unique shapes cannot grow
    memory without limit; the oldest half is dropped when full)."""

    def __init__(self, dialect: Dialect, cache_size: int = CACHE_SIZE):
        self._fn = postgres if dialect == "postgres" else sqlite
        self._cache: dict[str, Fingerprint] = {}
        self._size = cache_size
        self.misses = 0

    def __call__(self, sql: str) -> Fingerprint:
        key = cheap_key(sql)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        self.misses += 1
        if len(self._cache) >= self._size:
            for old in list(self._cache)[: self._size // 2]:
                del self._cache[old]
        fp = self._cache[key] = self._fn(sql)
        return fp
