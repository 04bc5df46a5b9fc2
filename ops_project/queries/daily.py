"""The daily report of one database: its statements of one day (in the configured time zone) from every
configured log, ranked, and compared with the day before: new query shapes, gone ones, and regressions.

A regression is judged as deploy validation judges a slower release (``releases.compare``): the day's
durations stochastically larger than the day before's (one-sided Mann-Whitney U), p95 worse by more than
``regression_factor`` and by at least the floor, with enough calls on both sides.
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ops_project.queries.analyze import Collected, NoStatementsError, collect, report
from ops_project.queries.config import QueriesConfig, QuerySource
from ops_project.queries.release_tie import Deployment, tie
from ops_project.releases.compare import MIN_SAMPLES, compare

SAMPLES_KEPT = 256  # per query shape, in the stored report: tomorrow's comparison needs them
REGRESSION_FLOOR_MS = 1.0
REGRESSION_ALPHA = 0.01


def report_key(database: str, day: str) -> str:
    return f"reports/queries/{database}/{day}.json"


def day_range(day: str, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(date.fromisoformat(day), time(0), tzinfo=tz)
    end = datetime.combine(date.fromisoformat(day) + timedelta(days=1), time(0), tzinfo=tz)
    return start, end


def _fmt(source: QuerySource) -> str:
    return "sqlite-jsonl" if source.kind == "sqlite_jsonl" else source.format


def daily_report(settings: QueriesConfig, database: str, day: str, tz: ZoneInfo, previous: dict | None,
                 deployments: list[Deployment] = ()) -> dict:
    """The report of ``database`` for ``day`` (YYYY-MM-DD), compared with ``previous`` (the stored report of
    the day before, or None); each regression tied to a release of ``deployments``. Raises NoStatementsError
    when the day's logs hold no statement."""
    since, until = day_range(day, tz)
    sources = [s for s in settings.sources if s.database == database and s.kind != "pg_stat_statements"]
    collected = Collected()
    for source in sources:
        collect(source.paths, _fmt(source), source.log_line_prefix, keep_examples=settings.keep_examples,
                since=since, until=until, tz=tz, into=collected, log_database=source.log_database)
    if not collected.groups:
        raise NoStatementsError(
            f"no statement of {database} logged on {day} ({tz.key}) in {', '.join(collected.read.files)} "
            f"({collected.outside} statements on other days): the logs of that day are missing or rotated away")
    out = report(collected, top=settings.top, keep_examples=settings.keep_examples)
    out["database"], out["day"], out["timezone"] = database, day, tz.key
    for q in out["queries"]:
        sample = collected.groups[q["fingerprint"]].sample
        if len(sample) > SAMPLES_KEPT:  # a uniform subsample, never the day's first calls only
            sample = random.Random(q["fingerprint"]).sample(sample, SAMPLES_KEPT)
        q["samples"] = [round(v, 4) for v in sample]
    out["all_fingerprints"] = sorted(collected.groups)  # new and gone are judged on every shape, not the top
    out["compared_with"] = previous["day"] if previous else None
    out["new"], out["gone"], out["regressed"] = _compare(out, previous, settings.regression_factor)
    previous_start = day_range(previous["day"], tz)[0] if previous else since
    out["regressed"] = [tie(r, list(deployments), previous_start, until) for r in out["regressed"]]
    return out


def make_daily(store, settings: QueriesConfig, database: str, day: str, tz: ZoneInfo,
               deployments: list[Deployment] = ()) -> tuple[dict, str]:
    """The day's report, compared with the stored report of the day before, stored in ``store`` (the primary
    region) at ``report_key``. Returns the report and where it went. The asset and the CLI both call this."""
    before = report_key(database, (date.fromisoformat(day) - timedelta(days=1)).isoformat())
    previous = json.loads(store.get_bytes(before)) if store.exists(before) else None
    rep = daily_report(settings, database, day, tz, previous, deployments)
    key = report_key(database, day)
    store.put_bytes(key, to_bytes(rep))
    return rep, store.describe(key)


def _compare(today: dict, previous: dict | None, factor: float) -> tuple[list, list, list]:
    if previous is None:
        return [], [], []
    before = {q["fingerprint"]: q for q in previous.get("queries", [])}
    now = {q["fingerprint"]: q for q in today["queries"]}
    seen_before = set(previous.get("all_fingerprints") or before)
    seen_now = set(today.get("all_fingerprints") or now)
    new = [f for f in now if f not in seen_before]
    gone = [f for f in before if f not in seen_now]
    regressed = []
    for fid, q in now.items():
        old = before.get(fid)
        if old is None or q["calls"] < MIN_SAMPLES or old["calls"] < MIN_SAMPLES:
            continue
        verdict = compare(fid, q["samples"], old.get("samples"), old["p95_ms"], factor=factor,
                          floor_ms=REGRESSION_FLOOR_MS, alpha=REGRESSION_ALPHA)
        mean_worse = q["mean_ms"] > factor * old["mean_ms"] and q["mean_ms"] - old["mean_ms"] >= REGRESSION_FLOOR_MS
        if verdict.regressed or (mean_worse and verdict.p_value is not None and verdict.p_value < REGRESSION_ALPHA):
            regressed.append({"fingerprint": fid, "query": q["query"], "p95_ms": q["p95_ms"],
                              "p95_ms_before": old["p95_ms"], "mean_ms": q["mean_ms"],
                              "mean_ms_before": old["mean_ms"], "p_value": verdict.p_value,
                              "first_seen": q["first_seen"], "why": verdict.reason})
    return new, gone, regressed


def markdown(rep: dict, limit: int = 15) -> str:
    """The UI's table of the day's top queries, then what changed since the day before."""
    from ops_project.common.markdown import table

    rows = [(f"{q['total_ms'] / 1000:.2f}", q["calls"], f"{q['mean_ms']:.2f}", f"{q['p95_ms']:.2f}",
             f"{q['share']:.1%}", q["query"][:120]) for q in rep["queries"][:limit]]
    lines = [f"### Slow queries of {rep['database']} on {rep['day']} ({rep['timezone']})", "",
             f"{rep['statements']} statements, {rep['fingerprints']} query shapes, "
             f"{rep['total_ms'] / 1000:.1f} s in all.", "",
             table(["total s", "calls", "mean ms", "p95 ms", "share", "query"], rows)]
    if rep.get("compared_with"):
        lines += ["", f"Since {rep['compared_with']}: {len(rep['new'])} new, {len(rep['gone'])} gone, "
                      f"{len(rep['regressed'])} regressed."]
        for r in rep["regressed"]:
            release = r.get("release")
            tied = f"; release {release['tag']} ({release['how']})" if release else ""
            lines.append(f"- REGRESSED: `{r['query'][:100]}`: {r['why']}{tied}")
    return "\n".join(lines)


def to_bytes(rep: dict) -> bytes:
    return (json.dumps(rep, indent=1) + "\n").encode()
