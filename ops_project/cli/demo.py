"""``demo-db`` and ``demo-api``: the demo booking database and the API deploy validation checks."""

from __future__ import annotations

import argparse
import sys

from ops_project.cli.parsing import command
from ops_project.common.errors import OpsError


def cmd_demo_db(args: argparse.Namespace) -> int:
    from ops_project.demo.database import generate

    path = generate(args.path, args.size_mb, seed=args.seed)
    print(f"demo database written to {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0


QUERY_LOG = "queries-{date}.jsonl"  # beside the configured demo database: what ops.yaml's queries source reads


def _configured_demo(args: argparse.Namespace):
    """The configured demo database (generated on first use) and the configuration."""
    from ops_project.clients import Clients
    from ops_project.config import load_config

    cfg = load_config(args.config)
    demo = next((d for d in cfg.databases if d.engine == "sqlite"), None)
    if demo is None:
        raise OpsError(f"{cfg.source}: no SQLite database to serve; pass --db PATH")
    Clients(cfg).database_url(demo)  # generates the configured demo database on first use
    return demo.path, cfg


def cmd_demo_api(args: argparse.Namespace) -> int:
    from ops_project.demo.api import serve

    db, query_log, cfg = args.db, args.query_log, None
    if not db:
        db, cfg = _configured_demo(args)
        if query_log is None:
            query_log = str(db.parent / QUERY_LOG)
    cache, cached = _read_through(cfg or _config(args))
    logged = f", statements logged to {query_log}" if query_log else ""
    print(f"demo booking API {args.version} on http://{args.host}:{args.port} (database {db}{logged}; {cached})",
          file=sys.stderr)
    serve(db, args.version, args.port, host=args.host, latency_ms=args.latency_ms, query_log=query_log or None,
          cache=cache)
    return 0


def _config(args: argparse.Namespace):
    from ops_project.config import load_config

    return load_config(args.config)


def _read_through(cfg):
    """The Redis read-through the configuration's cache section asks for, and what to say about it."""
    if cfg.cache is None:
        return None, "no cache section: availability from the database only"
    from ops_project.cache.readthrough import ReadThrough
    from ops_project.cache.redis_client import connect, where
    from ops_project.clients import Clients

    url = Clients(cfg).redis_url()
    if url is None:
        return None, f"{cfg.cache.redis_url_env} is not set: availability from the database only"
    client = connect(url)  # a wrong URL or password stops the start, loudly
    return (ReadThrough(client, cfg.cache.key_prefix, cfg.cache.ttl_seconds, cfg.cache.ttl_jitter),
            f"availability read through {where(url)}")


def cmd_demo_traffic(args: argparse.Namespace) -> int:
    from datetime import date, datetime, timedelta

    from ops_project.common.errors import UnknownNameError
    from ops_project.demo.traffic import simulate_day

    db, cfg = _configured_demo(args)
    if args.day == "yesterday":
        day = datetime.now(cfg.tz).date() - timedelta(days=1)
    else:
        try:
            day = date.fromisoformat(args.day)
        except ValueError:
            raise UnknownNameError(f"--day {args.day!r} is not a date (YYYY-MM-DD) or 'yesterday'") from None
    log = args.query_log or str(db.parent / QUERY_LOG)
    done = simulate_day(db, day, log, cfg.tz, requests=args.requests)
    print(f"{done.requests} requests to the demo API as on {day} ({cfg.timezone}), {done.errors} errors; "
          f"statements logged to {', '.join(done.logs)}")
    return 1 if done.errors else 0


def add_parsers(sub) -> list[argparse.ArgumentParser]:
    demo = command(sub, "demo-db", "generate a demo booking SQLite database",
                   "Tenants, services, customers and appointments with realistic shapes, for trying the project.")
    demo.add_argument("--path", required=True, help="where to write the database file")
    demo.add_argument("--size-mb", type=float, default=8, help="approximate size of the database")
    demo.add_argument("--seed", type=int, default=42, help="random seed: the same seed gives the same data")
    demo.set_defaults(func=cmd_demo_db)

    api = command(sub, "demo-api", "serve the demo booking API (what deploy validation checks)",
                  "Serves /version, /health and the booking endpoints over the demo database.")
    api.add_argument("--port", type=int, default=8080, help="TCP port to listen on")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on")
    api.add_argument("--version", required=True, help="the release this instance serves, e.g. v1.4.2")
    api.add_argument("--db", help="SQLite database (default: the configured demo database)")
    api.add_argument("--latency-ms", type=int, default=0, help="add this delay to every request (chaos)")
    api.add_argument("--query-log", help="append every statement to this file as JSON lines, in the shape D1's "
                                         "query insights give ({date}: the UTC day; default, for the configured "
                                         f"demo database: {QUERY_LOG} beside it, what ops.yaml's queries source "
                                         "reads; '' for none)")
    api.set_defaults(func=cmd_demo_api)
    traffic = command(sub, "demo-traffic", "give one day of customer traffic to the demo API, for its query log",
                      "Sends read requests (services, availability, booking look-ups) through the demo API over\n"
                      "the configured demo database, as if during the day's business hours, and logs every\n"
                      "statement where the embedded default's slow-query report reads it. Never writes.")
    traffic.add_argument("--day", default="yesterday", help="YYYY-MM-DD, or yesterday (configured time zone)")
    traffic.add_argument("--requests", type=int, default=400, help="how many requests")
    traffic.add_argument("--query-log", help=f"where to log the statements (default: {QUERY_LOG} beside the "
                                             f"demo database)")
    traffic.set_defaults(func=cmd_demo_traffic)
    return [api, traffic]
