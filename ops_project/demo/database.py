"""Generate a multi-tenant booking SQLite database, deterministic for a given seed.

Shape: tenants → customers, staff, services → appointments (statuses, notes) → payments,
plus an audit log. Staff are never double-booked: each staff member's appointments follow one
another in time. Bulk rows are inserted before the indexes are built, with journaling off, so a
1 GiB database takes well under two minutes.
"""

from __future__ import annotations

import random
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

SCHEMA = """
CREATE TABLE tenants (
    id INTEGER PRIMARY KEY, slug TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    timezone TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE customers (
    id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL, email TEXT NOT NULL, phone TEXT, created_at TEXT NOT NULL);
CREATE TABLE staff (
    id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL, role TEXT NOT NULL);
CREATE TABLE services (
    id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name TEXT NOT NULL, duration_min INTEGER NOT NULL CHECK (duration_min > 0),
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0));
CREATE TABLE appointments (
    id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    staff_id INTEGER NOT NULL REFERENCES staff(id),
    service_id INTEGER NOT NULL REFERENCES services(id),
    starts_at TEXT NOT NULL, ends_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('booked','confirmed','completed','cancelled','no_show')),
    notes TEXT, created_at TEXT NOT NULL);
CREATE TABLE payments (
    id INTEGER PRIMARY KEY, appointment_id INTEGER NOT NULL REFERENCES appointments(id),
    amount_cents INTEGER NOT NULL, currency TEXT NOT NULL, method TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('paid','refunded','failed')), paid_at TEXT NOT NULL);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    actor TEXT NOT NULL, action TEXT NOT NULL, entity TEXT NOT NULL, entity_id INTEGER NOT NULL,
    at TEXT NOT NULL, payload TEXT NOT NULL);
"""

INDEXES = """
CREATE INDEX customers_tenant ON customers(tenant_id);
CREATE INDEX staff_tenant ON staff(tenant_id);
CREATE INDEX services_tenant ON services(tenant_id);
CREATE INDEX appointments_tenant_start ON appointments(tenant_id, starts_at);
CREATE INDEX appointments_staff_start ON appointments(staff_id, starts_at);
CREATE INDEX appointments_customer ON appointments(customer_id);
CREATE INDEX payments_appointment ON payments(appointment_id);
CREATE INDEX audit_tenant_at ON audit_log(tenant_id, at);
"""

_FIRST = ["Thandi", "Sipho", "Lerato", "Pieter", "Aisha", "Johan", "Naledi", "Ravi", "Emma", "Lwazi",
          "Fatima", "Karabo", "Chen", "Anika", "Tumi", "Mohammed", "Zanele", "Liam", "Ayanda", "Sara"]
_LAST = ["Nkosi", "van der Merwe", "Dlamini", "Botha", "Naidoo", "Mokoena", "Smith", "Khumalo",
         "Pillay", "Jacobs", "Mahlangu", "Coetzee", "Patel", "Zulu", "Ndlovu", "Meyer"]
_SERVICES = [("Haircut", 45, 25000), ("Colour", 120, 95000), ("Massage", 60, 60000), ("Facial", 50, 45000),
             ("Manicure", 40, 20000), ("Physio session", 45, 70000), ("Dental check-up", 30, 55000),
             ("Consultation", 30, 40000), ("Beard trim", 20, 12000), ("Yoga class", 60, 15000)]
_ROLES = ["stylist", "therapist", "practitioner", "assistant", "manager"]
_WORDS = ("please call before arriving allergic to latex prefers afternoon slots first visit "
          "referred by a friend parking at the back wheelchair access needed bring previous results "
          "running late rebooked from last week sensitive skin gift voucher used loyalty member "
          "requested same therapist as last time payment on arrival reminder sent by sms").split()
_STATUSES = ["completed"] * 6 + ["confirmed"] * 2 + ["booked", "cancelled", "no_show"]
_METHODS = ["card", "card", "card", "eft", "cash", "voucher"]
_CITIES = ["Africa/Johannesburg", "Africa/Lagos", "Africa/Nairobi", "Europe/London", "Europe/Berlin"]
_EPOCH = datetime(2024, 1, 1, 8, 0)


def _iso(dt: datetime) -> str:
    return dt.isoformat() + "Z"


def generate(path: str | Path, size_mb: float = 8, *, seed: int = 42, tenants: int | None = None) -> Path:
    """Write a new demo database of about ``size_mb`` MiB at ``path`` (replacing any file there)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".generating")
    tmp.unlink(missing_ok=True)
    target = int(size_mb * 1024 * 1024)
    rng = random.Random(seed)
    n_tenants = tenants or max(3, min(200, int(size_mb // 5) + 3))

    con = sqlite3.connect(tmp, isolation_level=None)
    con.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-65536;"
                      "PRAGMA page_size=4096;")
    con.executescript(SCHEMA)
    con.execute("BEGIN")
    staff_by_tenant: dict[int, list[int]] = {}
    services_by_tenant: dict[int, list[tuple[int, int, int]]] = {}
    customers_by_tenant: dict[int, tuple[int, int]] = {}
    next_ids = {"customers": 1, "staff": 1, "services": 1}
    for t in range(1, n_tenants + 1):
        name = f"{rng.choice(_LAST)} {rng.choice(['Salon', 'Clinic', 'Spa', 'Studio', 'Practice'])} {t}"
        since = _iso(_EPOCH - timedelta(days=rng.randint(30, 900)))
        con.execute("INSERT INTO tenants VALUES (?,?,?,?,?)", (t, f"tenant-{t:04d}", name, rng.choice(_CITIES), since))
        n_customers = rng.randint(200, 600)
        first = next_ids["customers"]
        rows = []
        for i in range(n_customers):
            cid = first + i
            fn, ln = rng.choice(_FIRST), rng.choice(_LAST)
            rows.append((cid, t, f"{fn} {ln}", f"{fn.lower()}.{cid}@example.com",
                         f"+27 8{rng.randint(0, 9)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                         _iso(_EPOCH - timedelta(days=rng.randint(0, 700)))))
        con.executemany("INSERT INTO customers VALUES (?,?,?,?,?,?)", rows)
        customers_by_tenant[t] = (first, first + n_customers - 1)
        next_ids["customers"] += n_customers
        staff_ids = []
        for _ in range(rng.randint(3, 12)):
            sid = next_ids["staff"]
            next_ids["staff"] += 1
            con.execute("INSERT INTO staff VALUES (?,?,?,?)",
                        (sid, t, f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", rng.choice(_ROLES)))
            staff_ids.append(sid)
        staff_by_tenant[t] = staff_ids
        services = []
        for sname, dur, price in rng.sample(_SERVICES, rng.randint(3, 7)):
            vid = next_ids["services"]
            next_ids["services"] += 1
            con.execute("INSERT INTO services VALUES (?,?,?,?,?)", (vid, t, sname, dur, price))
            services.append((vid, dur, price))
        services_by_tenant[t] = services
    con.execute("COMMIT")

    # Bulk: appointments, their payments and audit entries, until the file reaches the target.
    staff_clock = {sid: _EPOCH + timedelta(minutes=15 * rng.randint(0, 20))
                   for ids in staff_by_tenant.values() for sid in ids}
    staff_list = [(t, sid) for t, ids in staff_by_tenant.items() for sid in ids]
    appt_id = pay_id = audit_id = 1
    random_ = rng.random

    def randint(lo: int, hi: int) -> int:  # rng.randint is several times slower; same spread
        return lo + int(random_() * (hi - lo + 1))

    def choice(seq):
        return seq[int(random_() * len(seq))]

    hours = [timedelta(hours=h) for h in range(24 * 30 + 1)]
    quarters = [timedelta(minutes=15 * q) for q in range(9)]
    minutes = [timedelta(minutes=m) for m in range(241)]
    note_pool = [" ".join(choice(_WORDS) for _ in range(randint(0, 40))) or None for _ in range(4096)]
    batch = max(100, min(5000, target // 8000))
    while True:
        appts, pays, audits = [], [], []
        for _ in range(batch):
            t, sid = choice(staff_list)
            vid, dur, price = choice(services_by_tenant[t])
            lo, hi = customers_by_tenant[t]
            start = staff_clock[sid] + quarters[randint(0, 8)]
            end = start + minutes[dur]
            staff_clock[sid] = end
            status = choice(_STATUSES)
            notes = choice(note_pool)
            created = start - hours[randint(1, 24 * 30)]
            created_s, end_s = _iso(created), _iso(end)
            appts.append((appt_id, t, randint(lo, hi), sid, vid, _iso(start), end_s, status, notes, created_s))
            if status == "completed" or (status == "confirmed" and random_() < 0.3):
                pays.append((pay_id, appt_id, price, "ZAR", choice(_METHODS),
                             "refunded" if random_() < 0.03 else "paid", end_s))
                pay_id += 1
            for action in ("appointment.created", f"appointment.{status}"):
                audits.append((audit_id, t, f"user:{randint(1, 500)}", action, "appointment", appt_id,
                               created_s, f'{{"staff_id": {sid}, "service_id": {vid}, "status": "{status}", '
                               f'"ip": "10.{randint(0, 255)}.{randint(0, 255)}.{randint(1, 254)}"}}'))
                audit_id += 1
            appt_id += 1
        con.execute("BEGIN")
        con.executemany("INSERT INTO appointments VALUES (?,?,?,?,?,?,?,?,?,?)", appts)
        con.executemany("INSERT INTO payments VALUES (?,?,?,?,?,?,?)", pays)
        con.executemany("INSERT INTO audit_log VALUES (?,?,?,?,?,?,?,?)", audits)
        con.execute("COMMIT")
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        # Indexes add roughly a fifth to the table pages; stop so that the final file is near target.
        if pages * 4096 * 1.3 >= target:
            break
    con.executescript(INDEXES)
    con.execute("ANALYZE")
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    tmp.replace(path)
    return path


def ensure(path: str | Path, size_mb: float = 8, *, seed: int = 42) -> Path:
    """Generate the demo database at ``path`` unless one is already there (first use)."""
    path = Path(path)
    if not path.exists():
        generate(path, size_mb, seed=seed)
    return path
