"""The weekly capacity report: every resource's use, limit, growth, days to 80 % and 100 %, confidence, the
error of the forecasts made one and four weeks earlier, an action where one is due, cost per region, and a
chart per resource within the horizon.

Stored in the primary region under ``reports/capacity/<week>/``: ``report.json`` (with the forecasts the
next reports score) and one PNG per chart.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta

from cronsim import CronSim

from ops_project.capacity.chart import render
from ops_project.capacity.forecast import Forecast, forecast, predict
from ops_project.capacity.history import Series, manifest_series, merge_measurements, read_measurements
from ops_project.capacity.units import human
from ops_project.common.markdown import table
from ops_project.config import OpsConfig

REPORTS = "reports/capacity/"
GIB = 2**30
SCORED_LAGS = {"1w": 7, "4w": 28}  # the forecasts scored: made about this many days before
LAG_TOLERANCE_DAYS = {"1w": 3, "4w": 7}
CHARTED_KINDS = {"database_bytes", "connections", "xid_age", "sequence", "region_bytes", "redis_memory"}


def week_key(cfg: OpsConfig, at: datetime) -> tuple[str, datetime, datetime]:
    """(partition key, start, end) of the report week holding ``at``: from the cron's last tick at or before
    it to the next (the same windows as the ``capacity_report`` partitions)."""
    local = at.astimezone(cfg.tz)
    start = None
    for tick in CronSim(cfg.capacity.cron, (local - timedelta(days=400)).replace(tzinfo=None)):
        tick = tick.replace(tzinfo=cfg.tz)
        if tick > local:
            return (start or tick).strftime("%Y-%m-%d"), start or tick, tick
        start = tick
    raise ValueError(f"capacity.cron {cfg.capacity.cron!r} has no tick after {local.isoformat()}")


def action(s: Series, f: dict, horizon_days: int) -> str | None:
    """What to do, and by when, for a resource whose 80 % falls within the horizon (or that is over)."""
    due = f.get("days_to_80")
    detail = s.detail or {}
    notes = []
    if s.kind == "redis_memory" and detail.get("evicted_keys_delta"):
        notes.append(f"Redis evicted {detail['evicted_keys_delta']} keys in the last week: raise maxmemory or "
                     f"shorten TTLs")
    if s.kind == "database_bytes" and detail.get("free_bytes", 0) > max(0.25 * (f.get("last_value") or 0), 10 << 20):
        notes.append(f"VACUUM {s.resource.split('/')[0]}: {human(detail['free_bytes'], 'bytes')} in free pages")
    if f.get("over_limit") or (due is not None and due <= horizon_days):
        by = "now" if (due == 0 or f.get("over_limit")) else \
            f"before {datetime.fromisoformat(f['limit80_at']).date().isoformat()}"
        db, _, rest = s.resource.partition("/")
        named = rest.partition(":")[2] or db
        what = {
            "database_bytes": f"raise the volume (or archive old rows) of {db} {by}",
            "connections": f"add a pooler (PgBouncer) before raising max_connections on {db} ({by})",
            "xid_age": f"vacuum freeze {db} (VACUUM (FREEZE) on the oldest tables; check autovacuum) {by}",
            "sequence": f"widen the column {named} feeds to bigint {by}",
            "region_bytes": f"raise the quota of {db.partition(':')[2]} or tighten retention {by}",
            "redis_memory": f"raise Redis maxmemory or shorten TTLs {by}",
        }.get(s.kind, f"act on {s.label} {by}")
        notes.insert(0, what)
    return "; ".join(notes) or None


def _previous_reports(store, before: datetime) -> tuple[list[dict], list[str]]:
    out, problems = [], []
    for info in store.list(REPORTS):
        rest = info.key[len(REPORTS):]
        if rest.startswith("metrics/") or not rest.endswith("/report.json") or rest.count("/") != 1:
            continue
        try:
            doc = json.loads(store.get_bytes(info.key))
            made = datetime.fromisoformat(doc["as_of"])
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"earlier report {store.describe(info.key)} is unreadable ({exc}); not scored")
            continue
        if made < before:
            out.append(doc)
    return out, problems


def score(previous: list[dict], as_of: datetime, series: dict[str, Series]) -> dict[str, dict]:
    """MAPE (%) of the forecasts made about 1 and 4 weeks before ``as_of``, against what was measured since."""
    scores: dict[str, dict] = {}
    for lag, days in SCORED_LAGS.items():
        target = as_of - timedelta(days=days)
        tolerance = LAG_TOLERANCE_DAYS[lag] * 86400
        near = [d for d in previous if abs((datetime.fromisoformat(d["as_of"]) - target).total_seconds()) <= tolerance]
        if not near:
            continue
        doc = min(near, key=lambda d: abs((datetime.fromisoformat(d["as_of"]) - target).total_seconds()))
        made = datetime.fromisoformat(doc["as_of"])
        for row in doc.get("resources", []):
            s = series.get(row["resource"])
            stored = row.get("forecast") or {}
            if s is None or stored.get("insufficient_data", True):
                continue
            errors = [abs(v - predict(stored, t)) / abs(v) for t, v in s.points.items()
                      if made < t <= as_of and v != 0]
            if errors:
                scores.setdefault(row["resource"], {})[lag] = {
                    "mape": round(100 * sum(errors) / len(errors), 2), "points": len(errors),
                    "made_at": doc["as_of"], "week": doc.get("week")}
    return scores


def _windows_between(cron: str, tz, start: datetime, end: datetime) -> int:
    n = 0
    for tick in CronSim(cron, start.astimezone(tz).replace(tzinfo=None)):
        if tick.replace(tzinfo=tz) > end:
            break
        n += 1
        if n > 100_000:
            break
    return n


def costs(cfg: OpsConfig, series: dict[str, Series], forecasts: dict[str, dict], entries: list,
          as_of: datetime) -> list[dict]:
    """Per region: stored bytes × price now and at the horizon, PUTs, and what retention saves (every backup
    window since the first backup kept, at the databases' mean backup size, against what is stored)."""
    out = []
    complete = [e for e in entries if e.manifest is not None]
    without_retention = 0.0
    for db in {e.database for e in complete}:
        mine = [e for e in complete if e.database == db]
        mean = sum(e.manifest.stored_size_bytes for e in mine) / len(mine)
        first = min(e.snapshot_at for e in mine)
        windows = max(_windows_between(cfg.backup.cron, cfg.tz, first, as_of), len(mine))
        without_retention += mean * (windows - len(mine))
    for region in cfg.regions:
        s = series.get(f"region:{region.name}/bytes")
        price = cfg.capacity.regions.get(region.name)
        if s is None or not s.points:
            out.append({"region": region.name,
                        "missing": "no measurement of its bytes yet (capacity_metrics lists each region)"})
            continue
        now_bytes = s.ordered[1][-1]
        f = forecasts.get(s.resource) or {}
        at_h = None if f.get("insufficient_data", True) else max(f["horizon_value"], 0.0)
        gb_month = price.price_gb_month if price else 0.0
        put = price.price_per_1000_put if price else 0.0
        written = (s.detail or {}).get("objects_written_30d", 0)
        out.append({
            "region": region.name, "bytes": now_bytes, "objects": (s.detail or {}).get("objects"),
            "price_gb_month": gb_month, "monthly_storage": round(now_bytes / GIB * gb_month, 6),
            "bytes_at_horizon": at_h, "monthly_storage_at_horizon": round(at_h / GIB * gb_month, 6)
            if at_h is not None else None,
            "puts_30d": written, "monthly_requests": round(written / 1000 * put, 9),
            "retention_saves_bytes": round(without_retention),
            "retention_saves_monthly": round(without_retention / GIB * gb_month, 6),
            "quota_bytes": s.limit,
        })
    return out


def _evictions(series: Series, docs: list[dict]) -> None:
    """Evicted keys over the week, from the cumulative counter of the first and last measurement."""
    counts = [s["detail"].get("evicted_keys") for d in docs for s in d["samples"]
              if s.get("resource") == series.resource and isinstance(s.get("detail"), dict)]
    counts = [c for c in counts if isinstance(c, int)]
    if len(counts) >= 2:
        series.detail["evicted_keys_delta"] = max(counts[-1] - counts[0], 0) if counts[-1] >= counts[0] \
            else counts[-1]  # a restart reset the counter


def build_report(cfg: OpsConfig, store, *, as_of: datetime, week: str, measured: dict | None = None,
                 charts: bool = True) -> tuple[dict, dict[str, bytes]]:
    """The report and its charts (name → PNG). ``store`` is the primary region; ``measured`` a measurement
    taken now (already stored), whose missing sources are named in the report."""
    missing: list[dict] = list((measured or {}).get("missing", []))

    def read(what: str, fn, empty: tuple) -> tuple:
        """One source of history, or ``empty`` with the source named: the rest is still reported."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - a region that cannot be listed, an unreadable folder
            missing.append({"what": what, "why": f"{type(exc).__name__}: {exc}"})
            return empty

    series, bad_manifests, entries = read(f"backup manifests in {cfg.primary.name}",
                                          lambda: manifest_series(store, as_of), ({}, [], []))
    since = as_of - timedelta(days=cfg.capacity.history_days)
    docs, bad_measurements = read(f"stored measurements in {cfg.primary.name}",
                                  lambda: read_measurements(store, since, as_of), ([], []))
    merge_measurements(series, docs)
    for db, limit in cfg.capacity.limits.items():
        if f"{db}/bytes" in series and limit.bytes:
            series[f"{db}/bytes"].limit = float(limit.bytes)
            series[f"{db}/bytes"].limit_source = f"capacity.limits.{db}.bytes"
    if "redis/used_memory" in series:
        _evictions(series["redis/used_memory"], docs)
    horizon = cfg.capacity.horizon_days
    forecasts = {rid: forecast(*s.ordered, s.limit, horizon_days=horizon, now=as_of).to_dict()
                 for rid, s in series.items()}
    previous, bad_reports = read("earlier reports", lambda: _previous_reports(store, as_of), ([], []))
    problems = [*bad_manifests, *bad_measurements, *bad_reports]
    scores = score(previous, as_of, series)
    rows, images = [], {}
    for rid in sorted(series, key=lambda r: (series[r].kind == "table_rows", r)):
        s, f = series[rid], forecasts[rid]
        due = f["days_to_80"]
        within = f["over_limit"] or (due is not None and due <= horizon)
        alert = f["over_limit"] or (due is not None and due <= cfg.capacity.alert_days)
        chart = None
        if charts and within and s.kind in CHARTED_KINDS:
            name = rid.replace("/", "__").replace(":", "_") + ".png"
            images[name] = render(s.label, s.unit, *s.ordered, Forecast(**f))
            chart = name
        rows.append({"resource": rid, "label": s.label, "kind": s.kind, "unit": s.unit, "limit": s.limit,
                     "limit_source": s.limit_source, "sources": sorted(s.sources), "detail": s.detail,
                     "forecast": f, "growth_per_week": f["slope_per_day"] * 7 if f["slope_per_day"] is not None
                     else None, "within_horizon": within, "alert": alert, "action": action(s, f, horizon),
                     "scores": scores.get(rid, {}), "chart": chart})
    report = {"week": week, "as_of": as_of.isoformat(), "horizon_days": horizon,
              "alert_days": cfg.capacity.alert_days, "currency": cfg.capacity.currency, "resources": rows,
              "costs": costs(cfg, series, forecasts, entries, as_of), "missing": missing, "problems": problems,
              "measured": bool(measured and measured.get("samples"))}
    return report, images


def store_report(store, report: dict, images: dict[str, bytes]) -> str:
    """Charts first, the JSON last (a report that names a chart always has it); returns the JSON's key."""
    prefix = f"{REPORTS}{report['week']}/"
    for name, png in images.items():
        store.put_bytes(prefix + name, png)
    store.put_bytes(prefix + "report.json", (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    return prefix + "report.json"


def _when(f: dict, key: str, days_key: str) -> str:
    if f["insufficient_data"]:
        return "over now" if f["over_limit"] else "insufficient data"
    if f[days_key] is None:
        return "no date" if f["limit"] is not None else "—"
    if f[days_key] == 0:
        return "now"
    return f"{datetime.fromisoformat(f[key]).date().isoformat()} ({f[days_key]:.0f} d)"


def _score_cell(scores: dict) -> str:
    cells = [f"{lag} {scores[lag]['mape']:.1f} %" for lag in SCORED_LAGS if lag in scores]
    return ", ".join(cells) or "—"


def markdown(report: dict, images: dict[str, bytes] | None = None) -> str:
    """The report for the UI: the table, the actions, costs, what is missing; charts inline as data URIs."""
    rows = [r for r in report["resources"] if r["kind"] != "table_rows"]
    tables = sorted((r for r in report["resources"] if r["kind"] == "table_rows"),
                    key=lambda r: -(r["growth_per_week"] or 0))[:5]
    alerts = [r for r in rows if r["alert"]]
    head = (f"### Capacity, week {report['week']}: "
            + (f"{len(alerts)} resource(s) reach 80 % within {report['alert_days']} days" if alerts
               else f"nothing reaches 80 % within {report['alert_days']} days"))
    lines = [head, "", f"As of {report['as_of']}, horizon {report['horizon_days']} days.", ""]

    def use(r):
        f = r["forecast"]
        ratio = f["last_value"] / r["limit"] if r["limit"] and f["last_value"] is not None else None
        share = "" if ratio is None else " (<1 %)" if 0 < ratio < 0.01 else f" ({ratio:.0%})"
        return human(f["last_value"], r["unit"]) + share

    def growth(r):
        if r["growth_per_week"] is None:
            return "—"
        return ("+" if r["growth_per_week"] >= 0 else "−") + human(abs(r["growth_per_week"]), r["unit"]) + "/wk"

    def confidence(r):
        f = r["forecast"]
        if f["insufficient_data"]:
            return "insufficient data"
        return f"{f['confidence']} (R² {f['r2']:.2f})" + (", after a level shift" if f["level_shift_at"] else "")

    lines.append(table(["resource", "use", "limit", "growth", "80 %", "100 %", "confidence", "forecast error",
                        "action"],
                       [(r["label"], use(r), human(r["limit"], r["unit"]), growth(r),
                         _when(r["forecast"], "limit80_at", "days_to_80"),
                         _when(r["forecast"], "limit_at", "days_to_limit"), confidence(r), _score_cell(r["scores"]),
                         r["action"] or "") for r in rows]))
    if tables:
        lines += ["", "Fastest-growing tables (rows, from the backup manifests):", "",
                  table(["table", "rows", "growth"], [(r["label"], human(r["forecast"]["last_value"], "rows"),
                                                       growth(r)) for r in tables])]
    costs = [c for c in report["costs"] if "missing" not in c]
    if costs:
        cur = report["currency"]
        lines += ["", f"Cost per region ({cur} per month; storage at GiB-month prices):", "",
                  table(["region", "stored", "storage", f"at {report['horizon_days']} d", "requests (PUTs, 30 d)",
                         "retention saves"],
                        [(c["region"], human(c["bytes"], "bytes"), f"{c['monthly_storage']:.2f}",
                          f"{c['monthly_storage_at_horizon']:.2f}" if c["monthly_storage_at_horizon"] is not None
                          else "insufficient data", f"{c['monthly_requests']:.2f} ({c['puts_30d']})",
                          f"{human(c['retention_saves_bytes'], 'bytes')}, {c['retention_saves_monthly']:.2f}")
                         for c in costs])]
    gone = report["missing"] + [{"what": c["region"], "why": c["missing"]} for c in report["costs"] if "missing" in c]
    if gone or report["problems"]:
        lines += ["", "**Not measured:**", ""]
        lines += [f"- {m['what']}: {m['why']}" for m in gone]
        lines += [f"- {p}" for p in report["problems"]]
    for r in rows:
        if r["chart"] and images and r["chart"] in images:
            data = base64.b64encode(images[r["chart"]]).decode()
            lines += ["", f"![{r['label']}](data:image/png;base64,{data})"]
    return "\n".join(lines)


def headroom_problems(report: dict) -> list[str]:
    """The resources whose 80 % falls within alert_days (or that are over): what the ERROR check says."""
    out = []
    for r in report["resources"]:
        if not r["alert"]:
            continue
        f = r["forecast"]
        when = "is over its limit" if f["over_limit"] else \
            f"reaches 80 % of {human(r['limit'], r['unit'])} on {datetime.fromisoformat(f['limit80_at']).date()}" \
            f" ({f['days_to_80']:.0f} days)"
        out.append(f"{r['label']} {when}" + (f": {r['action']}" if r["action"] else ""))
    return out
