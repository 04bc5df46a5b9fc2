"""A small booking API over the demo database: what deploy validation checks in the embedded default.

ASGI (Starlette), served by uvicorn: ``python -m ops_project demo-api --port P --version V``.

    GET  /health                                   200 {"status": "ok"} or 503 when the database is unreachable
    GET  /version                                  {"version": V}
    GET  /tenants/{slug}/services                  the tenant's services
    GET  /tenants/{slug}/availability?date=D&service_id=S[&staff_id=T]   free slots that day
    POST /tenants/{slug}/bookings                  {"service_id", "staff_id", "customer_email", "starts_at"} → 201
    GET  /tenants/{slug}/bookings/{id}             the booking, or 404
    DELETE /tenants/{slug}/bookings/{id}           cancel: the booking is removed (an audit entry remains)

Errors are proper status codes with a JSON body: 400/422 bad input, 404 unknown, 409 slot taken,
503 database unavailable. ``latency_ms`` adds a fixed delay to every request (a chaos knob for
rehearsing a slow release).
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ops_project.cache.availability import availability as availability_of
from ops_project.cache.availability import days_touched, iso
from ops_project.cache.keys import encode


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


_iso = iso


def create_app(db_path: str | Path, version: str, *, latency_ms: int = 0, query_log=None, cache=None) -> Starlette:
    """``query_log``: a file (or a ``demo.querylog.QueryLog``) to append every statement to, as D1's query
    insights give them (JSON lines); ``{date}`` in a path is the UTC day. ``cache``: a
    ``cache.readthrough.ReadThrough``: availability is read through Redis, and bookings and cancellations
    drop the keys of the days they change."""
    db_path = Path(db_path)
    factory = None
    if query_log is not None:
        from ops_project.demo.querylog import QueryLog, logged_connection

        factory = logged_connection(query_log if isinstance(query_log, QueryLog) else QueryLog(query_log))

    def connect() -> sqlite3.Connection:
        if not db_path.is_file():
            raise ApiError(503, "database unavailable")
        con = sqlite3.connect(Path(db_path).resolve().as_uri() + "?mode=rw", uri=True, timeout=5,
                              **({"factory": factory} if factory else {}))
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA foreign_keys=ON")
        return con

    def tenant_id(con: sqlite3.Connection, slug: str) -> int:
        row = con.execute("SELECT id FROM tenants WHERE slug = ?", (slug,)).fetchone()
        if row is None:
            raise ApiError(404, f"unknown tenant {slug!r}")
        return row["id"]

    def run(fn):
        async def endpoint(request: Request):
            if latency_ms:
                await asyncio.sleep(latency_ms / 1000)
            try:
                return await asyncio.to_thread(fn, request)
            except ApiError as exc:
                return JSONResponse({"error": exc.message}, status_code=exc.status)
            except sqlite3.OperationalError as exc:
                return JSONResponse({"error": f"database error: {exc}"}, status_code=503)
        return endpoint

    def health(_request: Request):
        con = connect()
        try:
            con.execute("SELECT count(*) FROM tenants").fetchone()
        finally:
            con.close()
        return JSONResponse({"status": "ok", "database": "ok", "version": version})

    def get_version(_request: Request):
        return JSONResponse({"version": version})

    def services(request: Request):
        con = connect()
        try:
            tid = tenant_id(con, request.path_params["slug"])
            rows = con.execute("SELECT id, name, duration_min, price_cents FROM services WHERE tenant_id = ? "
                               "ORDER BY id", (tid,)).fetchall()
            staff = con.execute("SELECT id, name FROM staff WHERE tenant_id = ? ORDER BY id", (tid,)).fetchall()
        finally:
            con.close()
        return JSONResponse({"services": [dict(r) for r in rows], "staff": [dict(r) for r in staff]})

    def _service(con, tid: int, service_id) -> sqlite3.Row:
        try:
            sid = int(service_id)
        except (TypeError, ValueError):
            raise ApiError(422, "service_id must be an integer") from None
        row = con.execute("SELECT id, duration_min FROM services WHERE id = ? AND tenant_id = ?", (sid, tid)).fetchone()
        if row is None:
            raise ApiError(404, f"unknown service {sid}")
        return row

    def availability(request: Request):
        q = request.query_params
        try:
            day = datetime.strptime(q.get("date", ""), "%Y-%m-%d").date()
        except ValueError:
            raise ApiError(422, "date must be YYYY-MM-DD") from None
        slug = request.path_params["slug"]
        try:
            staff_id = int(q["staff_id"]) if q.get("staff_id") else None
        except ValueError:
            raise ApiError(422, "staff_id must be an integer") from None
        if cache is not None and staff_id is None and q.get("service_id", "").isdigit():
            hit = cache.get(slug, int(q["service_id"]), day)
            if hit is not None:  # the key the warmer writes: the same bytes the database would give
                return Response(hit, media_type="application/json", headers={"X-Cache": "HIT"})
        con = connect()
        try:
            tid = tenant_id(con, slug)
            svc = _service(con, tid, q.get("service_id"))
            answer = availability_of(con, tid, svc["id"], svc["duration_min"], day, staff_id)
        finally:
            con.close()
        if cache is None or staff_id is not None:
            return JSONResponse(answer)
        value = encode(answer)
        cache.fill(slug, svc["id"], day, value)
        return Response(value, media_type="application/json", headers={"X-Cache": "MISS"})

    def invalidate(con, tid: int, slug: str, starts_at: str, ends_at: str) -> None:
        """A booking or a cancellation changed these days' availability for every service of the tenant."""
        if cache is None:
            return
        services = [r["id"] for r in con.execute("SELECT id FROM services WHERE tenant_id = ?", (tid,))]
        cache.invalidate(slug, services, days_touched(starts_at, ends_at))

    def book(request: Request, body: dict):
        for field in ("service_id", "staff_id", "customer_email", "starts_at"):
            if field not in body:
                raise ApiError(422, f"missing field {field!r}")
        try:
            start = datetime.strptime(body["starts_at"], "%Y-%m-%dT%H:%M:%SZ")
        except (TypeError, ValueError):
            raise ApiError(422, "starts_at must be YYYY-MM-DDTHH:MM:SSZ") from None
        con = connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            tid = tenant_id(con, request.path_params["slug"])
            svc = _service(con, tid, body["service_id"])
            staff = con.execute("SELECT id FROM staff WHERE id = ? AND tenant_id = ?",
                                (body["staff_id"], tid)).fetchone()
            if staff is None:
                raise ApiError(404, f"unknown staff member {body['staff_id']}")
            end = start + timedelta(minutes=svc["duration_min"])
            clash = con.execute("SELECT id FROM appointments WHERE staff_id = ? AND status <> 'cancelled' "
                                "AND starts_at < ? AND ends_at > ?", (staff["id"], _iso(end), _iso(start))).fetchone()
            if clash:
                raise ApiError(409, f"staff member {staff['id']} is already booked then (appointment {clash['id']})")
            email = str(body["customer_email"])
            cust = con.execute("SELECT id FROM customers WHERE tenant_id = ? AND email = ?", (tid, email)).fetchone()
            now = _iso(datetime.utcnow())
            cid = cust["id"] if cust else con.execute(
                "INSERT INTO customers (tenant_id, name, email, created_at) VALUES (?,?,?,?)",
                (tid, email.split("@")[0], email, now)).lastrowid
            aid = con.execute(
                "INSERT INTO appointments (tenant_id, customer_id, staff_id, service_id, starts_at, ends_at, status, "
                "created_at) VALUES (?,?,?,?,?,?,'booked',?)",
                (tid, cid, staff["id"], svc["id"], _iso(start), _iso(end), now)).lastrowid
            con.execute("INSERT INTO audit_log (tenant_id, actor, action, entity, entity_id, at, payload) "
                        "VALUES (?, 'api', 'appointment.created', 'appointment', ?, ?, '{}')", (tid, aid, now))
            con.execute("COMMIT")
            invalidate(con, tid, request.path_params["slug"], _iso(start), _iso(end))
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        return JSONResponse({"id": aid, "starts_at": _iso(start), "ends_at": _iso(end), "status": "booked"},
                            status_code=201)

    def booking(request: Request):
        con = connect()
        try:
            tid = tenant_id(con, request.path_params["slug"])
            row = con.execute("SELECT id, staff_id, service_id, starts_at, ends_at, status FROM appointments "
                              "WHERE id = ? AND tenant_id = ?", (request.path_params["id"], tid)).fetchone()
            if row is None:
                raise ApiError(404, f"no booking {request.path_params['id']}")
            if request.method == "GET":
                return JSONResponse(dict(row))
            con.execute("BEGIN IMMEDIATE")
            con.execute("DELETE FROM payments WHERE appointment_id = ?", (row["id"],))
            con.execute("DELETE FROM appointments WHERE id = ?", (row["id"],))
            con.execute("INSERT INTO audit_log (tenant_id, actor, action, entity, entity_id, at, payload) "
                        "VALUES (?, 'api', 'appointment.cancelled', 'appointment', ?, ?, '{}')",
                        (tid, row["id"], _iso(datetime.utcnow())))
            con.execute("COMMIT")
            invalidate(con, tid, request.path_params["slug"], row["starts_at"], row["ends_at"])
        finally:
            con.close()
        return JSONResponse({"id": row["id"], "status": "cancelled"})

    async def create_booking(request: Request):
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "body must be JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        try:
            return await asyncio.to_thread(book, request, body)
        except ApiError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except sqlite3.OperationalError as exc:
            return JSONResponse({"error": f"database error: {exc}"}, status_code=503)

    return Starlette(routes=[
        Route("/health", run(health)),
        Route("/version", run(get_version)),
        Route("/tenants/{slug}/services", run(services)),
        Route("/tenants/{slug}/availability", run(availability)),
        Route("/tenants/{slug}/bookings", create_booking, methods=["POST"]),
        Route("/tenants/{slug}/bookings/{id:int}", run(booking), methods=["GET", "DELETE"]),
    ])


def serve(db_path: str | Path, version: str, port: int, *, host: str = "127.0.0.1", latency_ms: int = 0,
          query_log: str | Path | None = None, cache=None) -> None:
    import uvicorn

    uvicorn.run(create_app(db_path, version, latency_ms=latency_ms, query_log=query_log, cache=cache), host=host,
                port=port, log_level="warning")
