"""The booking platform's business rules, counted: how many rows break each one.

Counted twice: in the live database's snapshot (recorded in the manifest: a fact about the live data)
and in every restored copy (which must give the same counts, or the restore changed the data).
Rules whose tables or columns are absent do not apply (not a booking schema).
"""

from __future__ import annotations

from collections.abc import Callable

INVARIANTS = [
    # (name, tables it needs, SQL counting violations)
    ("staff double-booked", {"appointments"},
     "SELECT count(*) FROM (SELECT starts_at, lag(ends_at) OVER (PARTITION BY staff_id ORDER BY starts_at) "
     "AS prev_end FROM appointments WHERE status <> 'cancelled') x WHERE prev_end > starts_at"),
    ("appointment without customer", {"appointments", "customers"},
     "SELECT count(*) FROM appointments a LEFT JOIN customers c ON c.id = a.customer_id WHERE c.id IS NULL"),
    ("appointment without service", {"appointments", "services"},
     "SELECT count(*) FROM appointments a LEFT JOIN services s ON s.id = a.service_id WHERE s.id IS NULL"),
    ("appointment without tenant", {"appointments", "tenants"},
     "SELECT count(*) FROM appointments a LEFT JOIN tenants t ON t.id = a.tenant_id WHERE t.id IS NULL"),
    ("payment without appointment", {"payments", "appointments"},
     "SELECT count(*) FROM payments p LEFT JOIN appointments a ON a.id = p.appointment_id WHERE a.id IS NULL"),
]


def count_violations(query: Callable[[str], int], tables: set[str], columns: set[tuple[str, str]]) -> dict[str, int]:
    """{rule: rows breaking it} for every rule that applies to this schema."""
    counts = {}
    for name, needs, sql in INVARIANTS:
        if not needs <= tables or (name == "staff double-booked" and ("appointments", "staff_id") not in columns):
            continue
        counts[name] = int(query(sql))
    return counts
