"""A day of customers on the demo booking API, for the embedded default's slow-query report.

The requests go through the API itself (its ASGI app, in process, over the demo database), so the query log
holds exactly the statements the API runs, timed for real; only the clock is simulated: the day's requests
are spread over its business hours (configured time zone), so that any past day can be given its traffic.
The traffic reads (services, availability for the coming days, booking look-ups): it never writes, so the
database, and its backups, stay as they are.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ops_project.common.errors import OpsError


@dataclass(frozen=True)
class Traffic:
    requests: int
    errors: int  # answers other than 200/404 (a 404 is a customer's mistyped booking number)
    logs: list[str]


def _catalogue(db_path: Path) -> tuple[list[tuple[str, int]], int]:
    con = sqlite3.connect(db_path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        pairs = con.execute("SELECT t.slug, s.id FROM services s JOIN tenants t ON t.id = s.tenant_id "
                            "ORDER BY t.id, s.id").fetchall()
        (top,) = con.execute("SELECT coalesce(max(id), 0) FROM appointments").fetchone()
    finally:
        con.close()
    if not pairs:
        raise OpsError(f"demo database {db_path} has no tenant with a service: regenerate it (demo-db)")
    return pairs, top


def simulate_day(db_path: str | Path, day: date, log: str | Path, tz: ZoneInfo, *, requests: int = 400,
                 seed: int = 1) -> Traffic:
    """Send ``requests`` read requests to the demo API over ``db_path`` as if during ``day`` (08:00–18:00 in
    ``tz``), logging every statement to ``log`` (``{date}`` allowed, see ``QueryLog``)."""
    import httpx

    from ops_project.demo.api import create_app
    from ops_project.demo.querylog import QueryLog

    db_path = Path(db_path)
    if not db_path.is_file():
        raise OpsError(f"demo database {db_path} does not exist: generate it first (python -m ops_project demo-db)")
    pairs, top = _catalogue(db_path)
    rng = random.Random(f"{seed}:{day.isoformat()}")
    opening = datetime.combine(day, time(8), tzinfo=tz)
    step = timedelta(hours=10) / max(1, requests)
    now = [opening]
    qlog = QueryLog(log, clock=lambda: now[0])
    app = create_app(db_path, "demo-traffic", query_log=qlog)
    weights = [1 / (i + 1) for i in range(len(pairs))]  # a few busy tenants and services, a long tail

    async def drive() -> int:
        errors = 0
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as client:
            for i in range(requests):
                now[0] = opening + i * step
                slug, service = rng.choices(pairs, weights)[0]
                kind = rng.random()
                if kind < 0.6:
                    wanted = day + timedelta(days=rng.randrange(14))
                    url = f"/tenants/{slug}/availability?date={wanted.isoformat()}&service_id={service}"
                elif kind < 0.85:
                    url = f"/tenants/{slug}/services"
                else:
                    url = f"/tenants/{slug}/bookings/{rng.randint(1, max(1, top))}"
                answer = await client.get(url)
                errors += answer.status_code not in (200, 404)
        return errors

    errors = asyncio.run(drive())
    return Traffic(requests, errors, sorted({str(qlog.path_for(opening + i * step)) for i in range(requests)}))
