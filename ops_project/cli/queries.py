"""``queries analyze``: slow-query analysis of log files without Dagster (the DESIGN contract)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ops_project.cli import exits
from ops_project.cli.parsing import command


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def cmd_analyze(args: argparse.Namespace) -> int:
    from ops_project.queries.analyze import analyze

    report = analyze(args.logs, args.format, args.log_line_prefix, top=args.top, keep_examples=args.keep_examples,
                     explain_db=args.explain_db)
    if args.json:
        text = json.dumps(report, indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            out = Path(args.json)
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_text(text)
            tmp.replace(out)  # never a half-written report
    if args.json != "-":
        print(f"{report['statements']} statements, {report['fingerprints']} query shapes, "
              f"{report['total_ms'] / 1000:.1f} s in all ({', '.join(report['files'])})")
        print(f"{'total s':>9} {'calls':>8} {'mean ms':>9} {'p95 ms':>9} {'share':>6}  query")
        for q in report["queries"]:
            text = q["query"] if len(q["query"]) <= 90 else q["query"][:87] + "..."
            print(f"{q['total_ms'] / 1000:>9.2f} {q['calls']:>8} {q['mean_ms']:>9.2f} {q['p95_ms']:>9.2f} "
                  f"{q['share']:>6.1%}  {text}")
        for h in report["hints"]:
            print(f"hint: {h['hint']} ({h['plan']}) for {h['fingerprint']}")
    return 0


def add_parsers(sub) -> list[argparse.ArgumentParser]:
    queries = sub.add_parser("queries", help="slow-query analysis of PostgreSQL and SQLite query logs",
                             description="Slow-query analysis of PostgreSQL and SQLite query logs.",
                             epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    qsub = queries.add_subparsers(dest="action", required=True, metavar="ACTION")
    analyze = command(qsub, "analyze", "rank the statements of query logs by total time",
                      "PostgreSQL logs (stderr with any log_line_prefix, csvlog, jsonlog; plain or .gz; files or\n"
                      "globs) or SQLite/D1 JSON lines. Statements are grouped by fingerprint: the same query with\n"
                      "other literals, $n parameters or another IN-list length is one group. A log that yields no\n"
                      "statement fails (exit 1) and names the file and the prefix tried.")
    analyze.add_argument("logs", nargs="+", metavar="LOG", help="log files or globs (quote globs)")
    analyze.add_argument("--format", default="auto",
                         choices=["auto", "stderr", "csvlog", "jsonlog", "sqlite-jsonl"],
                         help="log format (auto: by file name, then by the first line)")
    analyze.add_argument("--log-line-prefix", help="the server's log_line_prefix, for stderr logs "
                                                   "(default: PostgreSQL's own, '%%m [%%p] ')")
    analyze.add_argument("--top", type=_positive, default=50, help="how many query shapes to report")
    analyze.add_argument("--keep-examples", action="store_true",
                         help="keep one statement with its literals per shape (off: examples are normalised, so "
                              "customers' data stays out of the report)")
    analyze.add_argument("--explain-db", metavar="SQLITE",
                         help="SQLite logs: a copy of the database (opened read-only) for EXPLAIN QUERY PLAN hints")
    analyze.add_argument("--json", metavar="OUT", help="write the report as JSON to OUT (- for stdout)")
    analyze.set_defaults(func=cmd_analyze)
    return [analyze]
