"""The booking platform's business rules, counted: how many rows break each one.

Counted twice: in the live database's snapshot (recorded in the manifest: a fact about the live data)
and in every restored copy (which must give the same counts, or the restore changed the data).
A rule applies only where every column it reads exists (not a booking schema, or a schema after a
migration): a rule that does not apply is skipped, never a reason for a backup to fail.
"""

from __future__ import annotations

from collections.abc import Callable

INVARIANTS = [
    # (name, columns it reads as {table: {columns}}, SQL counting violations)
    ("staff double-booked", {"appointments": {"staff_id", "starts_at", "ends_at", "status"}},
     "SELECT count(*) FROM (SELECT starts_at, lag(ends_at) OVER (PARTITION BY staff_id ORDER BY starts_at) "
     "AS prev_end FROM appointments WHERE status <> 'cancelled') x WHERE prev_end > starts_at"),
    ("appointment without customer", {"appointments": {"customer_id"}, "customers": {"id"}},
     "SELECT count(*) FROM appointments a LEFT JOIN customers c ON c.id = a.customer_id WHERE c.id IS NULL"),
    ("appointment without service", {"appointments": {"service_id"}, "services": {"id"}},
     "SELECT count(*) FROM appointments a LEFT JOIN services s ON s.id = a.service_id WHERE s.id IS NULL"),
    ("appointment without tenant", {"appointments": {"tenant_id"}, "tenants": {"id"}},
     "SELECT count(*) FROM appointments a LEFT JOIN tenants t ON t.id = a.tenant_id WHERE t.id IS NULL"),
    ("payment without appointment", {"payments": {"appointment_id"}, "appointments": {"id"}},
     "SELECT count(*) FROM payments p LEFT JOIN appointments a ON a.id = p.appointment_id WHERE a.id IS NULL"),
]


def applicable(tables: set[str], columns: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """(name, SQL) of the rules whose every table and column exists."""
    return [(name, sql) for name, needs, sql in INVARIANTS
            if all(t in tables and all((t, c) in columns for c in cols) for t, cols in needs.items())]


def count_violations(query: Callable[[str], int], tables: set[str], columns: set[tuple[str, str]],
                     errors: tuple[type[BaseException], ...] = ()) -> dict[str, int]:
    """{rule: rows breaking it} for every rule that applies; a rule whose query fails with one of
    ``errors`` (a type it cannot compare, say) is skipped as not applicable."""
    counts = {}
    for name, sql in applicable(tables, columns):
        try:
            counts[name] = int(query(sql))
        except errors:
            continue
    return counts
