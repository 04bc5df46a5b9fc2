"""``capacity forecast``, ``capacity sample`` and ``capacity report``: capacity planning without Dagster."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path

from ops_project.cli.parsing import command, group, write_json
from ops_project.common.errors import UnknownNameError


def _limit(text: str) -> float:
    """A positive number, or a size such as 10GB / 10GiB."""
    try:
        value = float(text)
    except ValueError:
        from pydantic import ByteSize, TypeAdapter, ValidationError

        try:
            value = float(TypeAdapter(ByteSize).validate_python(text))
        except ValidationError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number or a size (10GB, 512MiB)") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a limit must be a positive, finite number")
    return value


def read_csv(path: str) -> tuple[list[datetime], list[float]]:
    """``timestamp,value`` rows (a header line is allowed); a bad row is an error naming the file and line."""
    try:
        handle = open(path, newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise UnknownNameError(f"--csv {path}: cannot be read ({exc.strerror})") from None
    times, values = [], []
    with handle:
        for number, row in enumerate(csv.reader(handle), 1):
            if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
                continue
            if number == 1 and row[0].strip().lower() in ("timestamp", "time", "ts"):
                continue
            if len(row) < 2:
                raise UnknownNameError(f"{path}, line {number}: expected 'timestamp,value', got {','.join(row)!r}")
            try:
                at = datetime.fromisoformat(row[0].strip().replace("Z", "+00:00"))
                value = float(row[1])
            except ValueError:
                raise UnknownNameError(f"{path}, line {number}: {row[0].strip()!r} is not an ISO 8601 time or "
                                       f"{row[1].strip()!r} is not a number") from None
            if not math.isfinite(value):
                raise UnknownNameError(f"{path}, line {number}: {row[1].strip()!r} is not a finite number")
            times.append(at if at.tzinfo else at.replace(tzinfo=UTC))
            values.append(value)
    if not times:
        raise UnknownNameError(f"{path}: no 'timestamp,value' rows")
    return times, values


def cmd_forecast(args: argparse.Namespace) -> int:
    from ops_project.capacity.forecast import forecast

    times, values = read_csv(args.csv)
    f = forecast(times, values, args.limit, horizon_days=args.horizon_days)
    doc = f.to_dict()
    if args.json == "-":
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return 0
    if args.json:
        write_json(args.json, doc)
    print(f"{f.points} points over {f.span_days:.1f} days: {f.reason}")
    if not f.insufficient_data:
        print(f"slope {f.slope_per_day:.6g}/day, R² {f.r2:.3f}; at {f.horizon_days} days "
              f"{f.horizon_value:.6g} (95 % {f.horizon_low:.6g} – {f.horizon_high:.6g})")
    if f.days_to_limit is not None:
        print(f"80 % of {args.limit:g}: {f.days_to_80} days ({f.limit80_at}); 100 %: {f.days_to_limit} days "
              f"({f.limit_at})")
    return 0


def _measure(args: argparse.Namespace):
    """The configuration, the primary region's store, and a measurement taken now and stored there."""
    from ops_project.capacity.run import Sources, sample
    from ops_project.clients import Clients
    from ops_project.config import load_config

    cfg = load_config(args.config)
    clients = Clients(cfg)

    def redis_for():
        from ops_project.cache.redis_client import connect

        url = clients.redis_url()
        return connect(url) if url else None

    primary = clients.store(cfg.primary)
    sources = Sources(clients.store, clients.database_url, redis_for if cfg.cache else None)
    doc, key = sample(cfg, primary, sources, now=datetime.now(UTC))
    return cfg, primary, doc, key


def cmd_sample(args: argparse.Namespace) -> int:
    _cfg, primary, doc, key = _measure(args)
    for s in doc["samples"]:
        print(f"{s['resource']}: {s['value']:g}" + (f" of {s['limit']:g}" if s["limit"] else ""))
    for m in doc["missing"]:
        print(f"not measured: {m['what']}: {m['why']}", file=sys.stderr)
    print(f"stored at {primary.describe(key)}" if key else "nothing stored")
    return 0 if doc["samples"] else 1


def cmd_report(args: argparse.Namespace) -> int:
    from ops_project.capacity.report import markdown, week_key
    from ops_project.capacity.run import report

    cfg, primary, measured, _key = _measure(args)
    as_of = datetime.fromisoformat(measured["taken_at"])
    rep, images, key = report(cfg, primary, as_of=as_of, week=week_key(cfg, as_of)[0], measured=measured)
    if args.json:
        write_json(args.json, rep)
    if args.charts:
        out = Path(args.charts)
        out.mkdir(parents=True, exist_ok=True)
        for name, png in images.items():
            (out / name).write_bytes(png)
    print(markdown(rep))  # charts are stored beside the report (and written with --charts), not printed
    print(f"\nstored at {primary.describe(key)}")
    return 0


def add_parsers(sub) -> list[argparse.ArgumentParser]:
    csub = group(sub, "capacity", "capacity planning: growth, forecasts, days to each limit, cost")
    fc = command(csub, "forecast", "forecast one series against a limit (anyone can check the maths)",
                 "The CSV has timestamp,value rows (ISO 8601, a number). Under 24 points or 2 days is\n"
                 "insufficient_data (no number); a level shift is found and the trend fitted after it; a\n"
                 "weekly cycle is modelled; a flat or shrinking series has no date; one already over its limit\n"
                 "says 0 days.")
    fc.add_argument("--csv", required=True, metavar="FILE", help="the series: timestamp,value per line")
    fc.add_argument("--limit", required=True, type=_limit, metavar="N", help="the ceiling (a number, or 10GB)")
    fc.add_argument("--horizon-days", type=int, default=90, help="where the prediction interval is given")
    fc.add_argument("--json", metavar="OUT", help="write the forecast as JSON to OUT (- for stdout)")
    fc.set_defaults(func=cmd_forecast)
    sm = command(csub, "sample", "measure every database, region and Redis now and store the measurement",
                 "One small file under reports/capacity/metrics/ in the primary region: the next point of\n"
                 "every series (the Dagster schedule capacity_sample_schedule does this hourly).")
    sm.set_defaults(func=cmd_sample)
    rp = command(csub, "report", "measure now, then make and store this week's capacity report",
                 "Reads the backup manifests and the stored measurements, forecasts every resource, scores the\n"
                 "forecasts of 1 and 4 weeks ago, prices each region, and stores report.json and the charts\n"
                 "under reports/capacity/<week>/ in the primary region. A source that cannot be reached is\n"
                 "named in the report; the command fails only when nothing could be measured.")
    rp.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")
    rp.add_argument("--charts", metavar="DIR", help="also write the charts (PNG) into DIR")
    rp.set_defaults(func=cmd_report)
    return [fc, sm, rp]
