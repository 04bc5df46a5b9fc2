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


def cmd_demo_api(args: argparse.Namespace) -> int:
    from ops_project.demo.api import serve

    db = args.db
    if not db:
        from ops_project.clients import Clients
        from ops_project.config import load_config

        cfg = load_config(args.config)
        demo = next((d for d in cfg.databases if d.engine == "sqlite"), None)
        if demo is None:
            raise OpsError(f"{cfg.source}: no SQLite database to serve; pass --db PATH")
        Clients(cfg).database_url(demo)  # generates the configured demo database on first use
        db = demo.path
    print(f"demo booking API {args.version} on http://{args.host}:{args.port} (database {db})", file=sys.stderr)
    serve(db, args.version, args.port, host=args.host, latency_ms=args.latency_ms, query_log=args.query_log)
    return 0


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
                                         "query insights give (for `queries analyze --format sqlite-jsonl`)")
    api.set_defaults(func=cmd_demo_api)
    return [api]
