"""The daily report of one database: its statements of one day (in the configured time zone) from every
configured log, ranked, and compared with the day before: new query shapes, gone ones, and regressions.

A regression is judged as deploy validation judges a slower release (``releases.compare``): the day's
durations stochastically larger than the day before's (one-sided Mann-Whitney U), p95 worse by more than
``regression_factor`` and by at least the floor, with enough calls on both sides.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ops_project.common.errors import OpsError
from ops_project.queries import pgss
from ops_project.queries.analyze import Collected, NoStatementsError, collect, report
from ops_project.queries.config import QueriesConfig, QuerySource
from ops_project.queries.fingerprint import Fingerprinter
from ops_project.queries.pgss import Interval
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


def _logs(settings: QueriesConfig, database: str, since: datetime, until: datetime, tz: ZoneInfo) -> Collected:
    collected = Collected()
    for source in settings.sources:
        if source.database == database and source.kind != "pg_stat_statements":
            collect(source.paths, _fmt(source), source.log_line_prefix, keep_examples=settings.keep_examples,
                    since=since, until=until, tz=tz, into=collected, log_database=source.log_database)
    return collected


def has_logs(settings: QueriesConfig, database: str) -> bool:
    return any(s.database == database and s.kind != "pg_stat_statements" for s in settings.sources)


def has_stat_statements(settings: QueriesConfig, database: str) -> bool:
    return any(s.database == database and s.kind == "pg_stat_statements" for s in settings.sources)


def daily_report(settings: QueriesConfig, database: str, day: str, tz: ZoneInfo, previous: dict | None,
                 deployments: list[Deployment] = (), interval: Interval | None = None,
                 explain: Callable[[list[dict]], list[dict]] | None = None, earlier: list[dict] = ()) -> dict:
    """The report of ``database`` for ``day`` (YYYY-MM-DD), compared with ``previous`` (the stored report of
    the day before, or None); each regression tied to a release of ``deployments``. ``interval``: what
    pg_stat_statements counted since its last snapshot (``pgss.diff``), reported beside the logs (with the share
    of its time the logs captured), or instead of them for a database without logs. ``explain``: index hints
    for the top statements from the database's planner (``hinter``). Raises NoStatementsError when the day's
    logs hold no statement. ``earlier``: stored reports of the days before ``previous`` (``compare_days``): a
    shape none of them saw is new, and each shape is also compared with those days pooled."""
    since, until = day_range(day, tz)
    logged = has_logs(settings, database)
    stat = _stat_statements(settings, database, interval, tz) if interval is not None else None
    if logged:
        collected = _logs(settings, database, since, until, tz)
        if not collected.groups:
            raise NoStatementsError(
                f"no statement of {database} logged on {day} ({tz.key}) in {', '.join(collected.read.files)} "
                f"({collected.outside} statements on other days): the logs of that day are missing or rotated "
                f"away")
        out = report(collected, top=settings.top, keep_examples=settings.keep_examples)
    elif stat is None or stat.get("discarded"):
        raise NoStatementsError(
            f"no statement of {database} for {day}: it has no query log configured, and "
            + (stat["discarded"] if stat else "pg_stat_statements only tells what ran since its last snapshot, "
               "taken live: a past day cannot be reported from it"))
    else:
        out = {"statements": stat["statements"], "hints": [], "queries": stat["queries"],
               "fingerprints": stat["fingerprints"], "unparsed_statements": stat["unparsed_statements"],
               "total_ms": stat["total_ms"], "files": [], "lines": 0, "unparsed_lines": 0, "outside_range": 0,
               "source": "pg_stat_statements"}
    out["database"], out["day"], out["timezone"] = database, day, tz.key
    if explain is not None:
        try:
            out["hints"] = explain(out["queries"])
        except OpsError as exc:  # the report stands; it says the planner could not be asked
            out["hints_error"] = str(exc)
    if stat is not None:
        out["pg_stat_statements"] = stat
    for q in out["queries"] if logged else ():
        sample = collected.groups[q["fingerprint"]].sample
        if len(sample) > SAMPLES_KEPT:  # a uniform subsample, never the day's first calls only
            sample = random.Random(q["fingerprint"]).sample(sample, SAMPLES_KEPT)
        q["samples"] = [round(v, 4) for v in sample]
    # new and gone are judged on every shape, not the top
    out["all_fingerprints"] = sorted(collected.groups) if logged else stat["all_fingerprints"]
    if logged and stat is not None and not stat.get("discarded"):
        stat["coverage"] = _coverage(settings, database, stat, tz)
    out["compared_with"] = previous["day"] if previous else None
    out["compared_days"] = sorted([r["day"] for r in earlier] + ([previous["day"]] if previous else []))
    out["new"], out["gone"], out["regressed"] = _compare(out, previous, settings.regression_factor, earlier)
    pooled = [*earlier, *([previous] if previous else [])]
    out["regressed_over_days"] = (
        _regressions({q["fingerprint"]: q for q in out["queries"]}, baseline(pooled), settings.regression_factor)
        if len(pooled) >= 2 else [])  # one day is the comparison above
    previous_start = day_range(previous["day"], tz)[0] if previous else since
    out["regressed"] = [tie(r, list(deployments), previous_start, until) for r in out["regressed"]]
    return out


def _stat_statements(settings: QueriesConfig, database: str, interval: Interval, tz: ZoneInfo) -> dict:
    """The pg_stat_statements part of a report: the interval, its top statements by total time, lost coverage."""
    out = interval.to_dict()
    if interval.discarded:
        return out
    groups, nested = pgss.group(interval, Fingerprinter("postgres"))
    total = sum(g.total_ms for g in groups.values())
    ranked = sorted(groups.values(), key=lambda g: (-g.total_ms, g.fingerprint))
    queries = []
    for g in ranked[:settings.top]:
        row = g.summary(total)
        row.update(p50_ms=None, p95_ms=None, p99_ms=None, max_ms=None, example=g.query,
                   first_seen=None, last_seen=None)  # counters, not calls: no percentile, no time seen
        queries.append(row)
    out.update(statements=sum(g.calls for g in groups.values()), total_ms=round(total, 3),
               nested_ms=round(nested, 3), fingerprints=len(groups), queries=queries,
               unparsed_statements=sum(g.calls for g in groups.values() if g.fingerprint.startswith("text:")),
               all_fingerprints=sorted(groups), coverage=None)
    return out


def _coverage(settings: QueriesConfig, database: str, stat: dict, tz: ZoneInfo) -> dict:
    """The share of pg_stat_statements' time over its interval that the logs captured, over the same interval."""
    # to whole seconds, outwards: a stderr prefix with %t stamps lines to the second
    since = datetime.fromisoformat(stat["since"]).replace(microsecond=0)
    until = datetime.fromisoformat(stat["until"]).replace(microsecond=0) + timedelta(seconds=1)
    try:
        logged = _logs(settings, database, since, until, tz)
        logged_ms = sum(g.total_ms for g in logged.groups.values())
    except NoStatementsError:
        logged_ms = 0.0
    share = min(1.0, logged_ms / stat["total_ms"]) if stat["total_ms"] else None
    return {"logged_ms": round(logged_ms, 3), "stat_statements_ms": stat["total_ms"],
            "share": round(share, 4) if share is not None else None}


def snapshot_due(day: str, tz: ZoneInfo, now: datetime) -> bool:
    """A pg_stat_statements snapshot, taken now, belongs to the report of ``day`` only when ``day`` is today or
    the day just ended (the daily run after midnight): an older day is a backfill, and now is not its time."""
    _start, end = day_range(day, tz)
    return now < end + timedelta(days=1)


def hinter(engine: str, *, url: str | None = None, path: str | Path | None = None):
    """Index hints for a report's top statements from the database's own planner, or None when it cannot be
    reached from here (no URL, no file)."""
    from ops_project.queries import plans

    if engine == "postgres" and url:
        return lambda queries: plans.postgres_hints(url, queries)
    if engine == "sqlite" and path is not None and Path(path).is_file():
        return lambda queries: plans.sqlite_hints(path, queries[:plans.EXPLAINED])
    return None


def make_daily(store, settings: QueriesConfig, database: str, day: str, tz: ZoneInfo,
               deployments: list[Deployment] = (), *, stat_statements_url: str | None = None,
               now: datetime | None = None, explain=None) -> tuple[dict, str]:
    """The day's report, compared with the stored report of the day before, stored in ``store`` (the primary
    region) at ``report_key``. Returns the report and where it went. The asset and the CLI both call this.

    With ``stat_statements_url`` (the database's server, when ``queries.sources`` has a pg_stat_statements
    source for it) and a day that is today or just ended, a snapshot is taken, diffed against the last one
    stored, and stored beside the reports once the report is."""
    now = now or datetime.now(UTC)
    reports = []
    for back in range(1, settings.compare_days + 1):
        key = report_key(database, (date.fromisoformat(day) - timedelta(days=back)).isoformat())
        reports.append(json.loads(store.get_bytes(key)) if store.exists(key) else None)
    previous, earlier = reports[0], [r for r in reports[1:] if r is not None]
    snapshot = interval = None
    if stat_statements_url and snapshot_due(day, tz, now):
        snapshot = pgss.take_snapshot(stat_statements_url, taken_at=now)
        last = pgss.latest_snapshot(store, database, before=pgss.snapshot_key(database, snapshot["taken_at"]))
        if last is not None:
            interval = pgss.diff(last, snapshot)
        elif not has_logs(settings, database):
            store.put_bytes(pgss.snapshot_key(database, snapshot["taken_at"]), to_bytes(snapshot))
            raise NoStatementsError(
                f"the first pg_stat_statements snapshot of {database} was taken now and stored: the counters say "
                f"what ran since the previous snapshot, and there was none. The next run reports the interval")
    rep = daily_report(settings, database, day, tz, previous, deployments, interval, explain, earlier)
    if snapshot is not None and interval is None:
        rep["pg_stat_statements"] = {"until": snapshot["taken_at"], "discarded": "the first snapshot: the next "
                                     "run reports what ran since"}
    key = report_key(database, day)
    store.put_bytes(key, to_bytes(rep))
    if snapshot is not None:
        store.put_bytes(pgss.snapshot_key(database, snapshot["taken_at"]), to_bytes(snapshot))
    return rep, store.describe(key)


def _compare(today: dict, previous: dict | None, factor: float,
             earlier: list[dict] = ()) -> tuple[list, list, list]:
    """New shapes (in none of ``previous`` and the ``earlier`` days' reports), gone ones (in ``previous``, not
    today), and regressions against ``previous``."""
    if previous is None and not earlier:
        return [], [], []
    before = {q["fingerprint"]: q for q in previous.get("queries", [])} if previous else {}
    now = {q["fingerprint"]: q for q in today["queries"]}
    seen_before = set(previous.get("all_fingerprints") or before) if previous else set()
    for rep in earlier:
        seen_before |= set(rep.get("all_fingerprints") or (q["fingerprint"] for q in rep.get("queries", [])))
    seen_now = set(today.get("all_fingerprints") or now)
    new = [f for f in now if f not in seen_before]
    gone = [f for f in before if f not in seen_now]
    return new, gone, _regressions(now, before, factor)


def baseline(reports: list[dict]) -> dict[str, dict]:
    """Each shape's calls of several days pooled: calls, mean, and a uniform subsample of their samples (each
    day weighted by its calls), with its p95: the baseline "the last N days" are compared with."""
    from ops_project.releases.compare import p95

    pooled: dict[str, dict] = {}
    for rep in reports:
        for q in rep.get("queries", []):
            if q.get("samples") is None:
                continue
            b = pooled.setdefault(q["fingerprint"], {"calls": 0, "total_ms": 0.0, "days": []})
            b["calls"] += q["calls"]
            b["total_ms"] += q["total_ms"]
            b["days"].append((q["calls"], q["samples"]))
    out = {}
    for fid, b in pooled.items():
        rng = random.Random(fid)
        samples = []
        for calls, kept in b["days"]:  # a day's share of the pool: its share of the calls
            want = max(1, round(4 * SAMPLES_KEPT * calls / b["calls"]))
            samples += kept if len(kept) <= want else rng.sample(kept, want)
        out[fid] = {"calls": b["calls"], "mean_ms": b["total_ms"] / b["calls"], "samples": samples,
                    "p95_ms": p95(samples)}
    return out


def _regressions(now: dict[str, dict], before: dict[str, dict], factor: float) -> list[dict]:
    regressed = []
    for fid, q in now.items():
        old = before.get(fid)
        if old is None or q["calls"] < MIN_SAMPLES or old["calls"] < MIN_SAMPLES:
            continue
        mean_worse = q["mean_ms"] > factor * old["mean_ms"] and q["mean_ms"] - old["mean_ms"] >= REGRESSION_FLOOR_MS
        if q.get("samples") is None or old.get("samples") is None:  # counters (pg_stat_statements): means only
            if "stddev_ms" in q and "stddev_ms" in old and mean_worse:
                p_value = mean_test(q, old)
                if p_value < REGRESSION_ALPHA:
                    regressed.append({"fingerprint": fid, "query": q["query"], "p95_ms": None, "p95_ms_before": None,
                                      "mean_ms": q["mean_ms"], "mean_ms_before": old["mean_ms"], "p_value": p_value,
                                      "first_seen": None,
                                      "why": f"mean {q['mean_ms']:.1f} ms vs {old['mean_ms']:.1f} ms, Welch "
                                             f"t-test p={p_value:.3g} (pg_stat_statements: means, no samples)"})
            continue
        verdict = compare(fid, q["samples"], old.get("samples"), old["p95_ms"], factor=factor,
                          floor_ms=REGRESSION_FLOOR_MS, alpha=REGRESSION_ALPHA)
        if verdict.regressed or (mean_worse and verdict.p_value is not None and verdict.p_value < REGRESSION_ALPHA):
            regressed.append({"fingerprint": fid, "query": q["query"], "p95_ms": q["p95_ms"],
                              "p95_ms_before": round(old["p95_ms"], 3), "mean_ms": q["mean_ms"],
                              "mean_ms_before": round(old["mean_ms"], 3), "p_value": verdict.p_value,
                              "first_seen": q["first_seen"], "why": verdict.reason})
    return regressed


def mean_test(now: dict, before: dict) -> float:
    """One-sided Welch t-test that ``now``'s mean (of calls, mean_ms, stddev_ms) is above ``before``'s."""
    from scipy.stats import ttest_ind_from_stats

    if now["stddev_ms"] == 0 and before["stddev_ms"] == 0:  # no spread at all: the means are the calls
        return 0.0 if now["mean_ms"] > before["mean_ms"] else 1.0
    result = ttest_ind_from_stats(now["mean_ms"], now["stddev_ms"], now["calls"], before["mean_ms"],
                                  before["stddev_ms"], before["calls"], equal_var=False, alternative="greater")
    return float(result.pvalue)


def markdown(rep: dict, limit: int = 15) -> str:
    """The UI's table of the day's top queries, then what changed since the day before."""
    from ops_project.common.markdown import table

    def rows(queries: list[dict]) -> list[tuple]:
        return [(f"{q['total_ms'] / 1000:.2f}", q["calls"], f"{q['mean_ms']:.2f}",
                 "—" if q.get("p95_ms") is None else f"{q['p95_ms']:.2f}", f"{q['share']:.1%}", q["query"][:120])
                for q in queries[:limit]]

    heads = ["total s", "calls", "mean ms", "p95 ms", "share", "query"]
    source = " (from pg_stat_statements)" if rep.get("source") == "pg_stat_statements" else ""
    lines = [f"### Slow queries of {rep['database']} on {rep['day']} ({rep['timezone']}){source}", "",
             f"{rep['statements']} statements, {rep['fingerprints']} query shapes, "
             f"{rep['total_ms'] / 1000:.1f} s in all.", "", table(heads, rows(rep["queries"]))]
    stat = rep.get("pg_stat_statements")
    if stat:
        lines += ["", f"pg_stat_statements, {stat.get('since') or '…'} to {stat['until']}:"]
        if stat.get("discarded"):
            lines.append(f"- not counted: {stat['discarded']}")
        else:
            cov = stat.get("coverage")
            lines.append(f"- {stat['statements']} statements, {stat['total_ms'] / 1000:.1f} s"
                         + (f"; the logs captured {cov['share']:.1%} of that time" if cov and cov["share"] is not None
                            else ""))
            if stat.get("lost_coverage"):
                lines.append(f"- LOST COVERAGE: {stat['lost_coverage']}")
            if not source:
                lines += ["", table(heads, rows(stat["queries"]))]
    if rep.get("hints"):
        lines += ["", "Index hints (from the planner):"]
        lines += [f"- {h['hint']}: `{h['plan'][:120]}`" for h in rep["hints"]]
    if rep.get("hints_error"):
        lines += ["", f"Index hints unavailable: {rep['hints_error']}"]
    if rep.get("compared_with"):
        lines += ["", f"Since {rep['compared_with']}: {len(rep['new'])} new, {len(rep['gone'])} gone, "
                      f"{len(rep['regressed'])} regressed."]
        for r in rep["regressed"]:
            release = r.get("release")
            tied = f"; release {release['tag']} ({release['how']})" if release else ""
            lines.append(f"- REGRESSED: `{r['query'][:100]}`: {r['why']}{tied}")
    if len(rep.get("compared_days") or ()) >= 2:
        lines.append(f"Against the {len(rep['compared_days'])} days before ({rep['compared_days'][0]} to "
                     f"{rep['compared_days'][-1]}, pooled): {len(rep['regressed_over_days'])} slower.")
        lines += [f"- SLOWER THAN THOSE DAYS: `{r['query'][:100]}`: {r['why']}" for r in rep["regressed_over_days"]]
    return "\n".join(lines)


def to_bytes(rep: dict) -> bytes:
    return (json.dumps(rep, indent=1) + "\n").encode()
