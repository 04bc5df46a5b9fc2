"""``queries analyze``: slow-query analysis of log files without Dagster (README, "The CLI")."""

from __future__ import annotations

import argparse
import json
import sys

from ops_project.cli.parsing import command, group, write_json


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def cmd_analyze(args: argparse.Namespace) -> int:
    from ops_project.queries.analyze import analyze

    report = analyze(args.logs, args.format, args.log_line_prefix, top=args.top, keep_examples=args.keep_examples,
                     explain_db=args.explain_db, log_database=args.log_database)
    if args.json == "-":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    elif args.json:
        write_json(args.json, report)
    if args.json != "-":
        total = report["total_ms"]
        spent = f"{total / 1000:.1f} s" if total >= 1000 else f"{total:.1f} ms"
        print(f"{report['statements']} statements, {report['fingerprints']} query shapes, {spent} in all "
              f"({', '.join(report['files'])})")
        print(f"{'total ms':>11} {'calls':>8} {'mean ms':>9} {'p95 ms':>9} {'share':>6}  query")
        for q in report["queries"]:
            text = q["query"] if len(q["query"]) <= 90 else q["query"][:87] + "..."
            print(f"{q['total_ms']:>11.1f} {q['calls']:>8} {q['mean_ms']:>9.2f} {q['p95_ms']:>9.2f} "
                  f"{q['share']:>6.1%}  {text}")
        for h in report["hints"]:
            print(f"hint: {h['hint']} ({h['plan']}) for {h['fingerprint']}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from datetime import date, datetime, timedelta

    from ops_project.clients import Clients
    from ops_project.common.errors import UnknownNameError
    from ops_project.config import load_config
    from ops_project.queries.daily import hinter, make_daily, markdown

    cfg = load_config(args.config)
    db = cfg.database(args.database)
    if not any(s.database == args.database for s in cfg.queries.sources):
        raise UnknownNameError(f"{cfg.source}: queries.sources names no log and no pg_stat_statements for "
                               f"database {args.database!r}")
    try:
        day = (datetime.now(cfg.tz).date() - timedelta(days=1) if args.day == "yesterday"
               else date.fromisoformat(args.day)).isoformat()
    except ValueError:
        raise UnknownNameError(f"--day {args.day!r} is not a date (YYYY-MM-DD) or 'yesterday'") from None
    clients = Clients(cfg)
    counted = any(s.database == args.database and s.kind == "pg_stat_statements" for s in cfg.queries.sources)
    url = clients.database_url(db)
    rep, location = make_daily(clients.store(cfg.primary), cfg.queries, args.database, day, cfg.tz,
                               stat_statements_url=url if counted else None,
                               explain=hinter(db.engine, url=url, path=db.path))
    if args.json:
        write_json(args.json, rep)
    print(markdown(rep))
    print(f"\nstored at {location}")
    return 0


def add_parsers(sub) -> list[argparse.ArgumentParser]:
    qsub = group(sub, "queries", "slow-query analysis of PostgreSQL and SQLite query logs")
    analyze = command(qsub, "analyze", "rank the statements of query logs by total time",
                      "PostgreSQL logs (stderr with any log_line_prefix, csvlog, jsonlog; plain or .gz; files or\n"
                      "globs) or SQLite/D1 JSON lines. Statements are grouped by fingerprint: the same query with\n"
                      "other literals, $n parameters or another IN-list length is one group. A log that yields no\n"
                      "statement fails (exit 1) and names the file and the prefix tried.")
    analyze.add_argument("logs", nargs="+", metavar="LOG", help="log files or globs (quote globs)")
    analyze.add_argument("--format", default="auto",
                         choices=["auto", "stderr", "csvlog", "jsonlog", "sqlite-jsonl"],
                         help="log format (auto: D1 JSON lines by their keys, else by file name, then by the "
                              "first line)")
    analyze.add_argument("--log-line-prefix", help="the server's log_line_prefix, for stderr logs "
                                                   "(default: PostgreSQL's own, '%%m [%%p] ')")
    analyze.add_argument("--log-database", metavar="NAME",
                         help="PostgreSQL logs: only the statements of this database (the prefix needs %%d)")
    analyze.add_argument("--top", type=_positive, default=50, help="how many query shapes to report")
    analyze.add_argument("--keep-examples", action="store_true",
                         help="keep one statement with its literals per shape (off: examples are normalised, so "
                              "customers' data stays out of the report)")
    analyze.add_argument("--explain-db", metavar="SQLITE",
                         help="SQLite logs: a copy of the database (opened read-only) for EXPLAIN QUERY PLAN hints")
    analyze.add_argument("--json", metavar="OUT", help="write the report as JSON to OUT (- for stdout)")
    analyze.set_defaults(func=cmd_analyze)
    rep = command(qsub, "report", "make and store one database's daily report, as the Dagster asset does",
                  "Reads the day's statements (configured time zone) from the logs queries.sources names,\n"
                  "and, for a pg_stat_statements source, what the server counted since the last snapshot\n"
                  "(taken now, when the day is today or yesterday, and stored beside the reports);\n"
                  "compares them with the stored report of the day before, stores the report in the primary\n"
                  "region (reports/queries/<database>/<day>.json) and prints its table.")
    rep.add_argument("--database", required=True, help="a configured database that queries.sources names")
    rep.add_argument("--day", required=True, help="the day, YYYY-MM-DD or yesterday, in the configured time zone")
    rep.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")
    rep.set_defaults(func=cmd_report)
    return [analyze, rep]
