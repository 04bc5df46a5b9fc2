"""Availability: the free slots of a service on a day, as the booking API serves them and the cache holds them.

One truth for both: the demo API answers ``GET /tenants/{slug}/availability?date=D&service_id=S`` with
``body(...)``, and the warmer writes the same body under the same key, computed the same way but set-wise
(``TenantDay``: one query for all of a tenant's appointments of a day, whatever its services and staff).

Rules: the day runs from ``OPEN_HOUR`` to ``CLOSE_HOUR`` (UTC, as the appointments are stored); a slot starts
every 15 minutes and lasts the service's duration; a slot is free for a staff member when none of their
appointments that is not cancelled overlaps it. Staff in id order; slots in time order per staff member.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

OPEN_HOUR, CLOSE_HOUR = 8, 17
STEP_MIN = 15


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def day_bounds(day: date) -> tuple[str, str]:
    """The day's start and end as stored timestamps: an appointment overlaps it if it starts before the end and
    ends after the start."""
    start = datetime(day.year, day.month, day.day)
    return iso(start), iso(start + timedelta(days=1))


@functools.lru_cache(maxsize=4096)
def _grid(day: date, duration_min: int) -> tuple[tuple[str, str], ...]:
    """Every slot of the day for a service of ``duration_min``, as stored timestamps (start, end)."""
    opening = datetime(day.year, day.month, day.day, OPEN_HOUR)
    closing = opening.replace(hour=CLOSE_HOUR)
    length, step = timedelta(minutes=duration_min), timedelta(minutes=STEP_MIN)
    out, start = [], opening
    while start + length <= closing:
        out.append((iso(start), iso(start + length)))
        start += step
    return tuple(out)


def free_slots(day: date, duration_min: int, staff_ids: Iterable[int],
               busy: dict[int, list[tuple[str, str]]]) -> list[dict]:
    """The free slots of a ``duration_min`` service on ``day`` for each of ``staff_ids`` (``busy``: each staff
    member's (starts_at, ends_at) that day, not cancelled)."""
    grid = _grid(day, duration_min)
    slots = []
    for staff_id in staff_ids:
        taken = busy.get(staff_id, ())
        for s, e in grid:
            if not any(b_start < e and b_end > s for b_start, b_end in taken):
                slots.append({"staff_id": staff_id, "starts_at": s, "ends_at": e})
    return slots


def body(day: date, service_id: int, slots: list[dict]) -> dict:
    """The API's JSON answer (and the cached value)."""
    return {"date": day.isoformat(), "service_id": service_id, "slots": slots}


def busy_of(con: sqlite3.Connection, staff_ids: list[int], day: date) -> dict[int, list[tuple[str, str]]]:
    """The appointments (not cancelled) of ``staff_ids`` that overlap ``day``, per staff member."""
    start, end = day_bounds(day)
    out: dict[int, list[tuple[str, str]]] = {s: [] for s in staff_ids}
    if not staff_ids:
        return out
    marks = ",".join("?" * len(staff_ids))
    for staff_id, b_start, b_end in con.execute(
            f"SELECT staff_id, starts_at, ends_at FROM appointments WHERE staff_id IN ({marks}) "
            f"AND status <> 'cancelled' AND starts_at < ? AND ends_at > ?", (*staff_ids, end, start)):
        out[staff_id].append((b_start, b_end))
    return out


def staff_of(con: sqlite3.Connection, tenant_id: int) -> list[int]:
    return [r[0] for r in con.execute("SELECT id FROM staff WHERE tenant_id = ? ORDER BY id", (tenant_id,))]


def availability(con: sqlite3.Connection, tenant_id: int, service_id: int, duration_min: int, day: date,
                 staff_id: int | None = None) -> dict:
    """What the API answers for one request (``staff_id``: one staff member's slots only)."""
    staff = [staff_id] if staff_id is not None else staff_of(con, tenant_id)
    return body(day, service_id, free_slots(day, duration_min, staff, busy_of(con, staff, day)))


@dataclass
class Tenant:
    id: int
    slug: str
    services: list[tuple[int, int]] = field(default_factory=list)  # (service id, duration in minutes)
    staff: list[int] = field(default_factory=list)


def tenants(con: sqlite3.Connection) -> list[Tenant]:
    """Every tenant with its services and staff, in id order (three queries for the whole database)."""
    by_id = {tid: Tenant(tid, slug) for tid, slug in con.execute("SELECT id, slug FROM tenants ORDER BY id")}
    for sid, tid, minutes in con.execute("SELECT id, tenant_id, duration_min FROM services ORDER BY id"):
        if tid in by_id:
            by_id[tid].services.append((sid, minutes))
    for staff_id, tid in con.execute("SELECT id, tenant_id FROM staff ORDER BY id"):
        if tid in by_id:
            by_id[tid].staff.append(staff_id)
    return list(by_id.values())


def tenant_days(con: sqlite3.Connection, tenant: Tenant, days: list[date]) -> Iterable[tuple[date, int, dict]]:
    """Every service's answer for ``tenant`` on each of ``days`` from one query for the whole window:
    (day, service id, body). Each day's busy times are the window's appointments that overlap that day, as
    ``busy_of`` would give them."""
    if not days:
        return
    window_start, window_end = day_bounds(days[0])[0], day_bounds(days[-1])[1]
    taken: dict[int, list[tuple[str, str]]] = {s: [] for s in tenant.staff}
    if tenant.staff:
        marks = ",".join("?" * len(tenant.staff))
        for staff_id, b_start, b_end in con.execute(
                f"SELECT staff_id, starts_at, ends_at FROM appointments WHERE staff_id IN ({marks}) "
                f"AND status <> 'cancelled' AND starts_at < ? AND ends_at > ?",
                (*tenant.staff, window_end, window_start)):
            taken[staff_id].append((b_start, b_end))
    for day in days:
        start, end = day_bounds(day)
        busy = {s: [(a, b) for a, b in spans if a < end and b > start] for s, spans in taken.items()}
        for service_id, minutes in tenant.services:
            yield day, service_id, body(day, service_id, free_slots(day, minutes, tenant.staff, busy))


def days_touched(starts_at: str, ends_at: str) -> list[date]:
    """The days an appointment overlaps (as ``busy_of`` counts overlap): the cached days it changes."""
    d = datetime.strptime(starts_at, "%Y-%m-%dT%H:%M:%SZ").date()
    days = [d]
    while iso(datetime(d.year, d.month, d.day) + timedelta(days=1)) < ends_at:
        d += timedelta(days=1)
        days.append(d)
    return days
