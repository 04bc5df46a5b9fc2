"""``cache warm`` and ``cache status``: the availability cache in Redis, without Dagster (README, "The CLI")."""

from __future__ import annotations

import argparse
import json
import sys

from ops_project.cli.parsing import command, group, write_json


def _load(args: argparse.Namespace):
    from ops_project.clients import Clients
    from ops_project.common.errors import ConfigError
    from ops_project.config import load_config

    cfg = load_config(args.config)
    if cfg.cache is None:
        raise ConfigError(f"{cfg.source} has no cache section: add one (README, cache warming) to warm the cache")
    return cfg, Clients(cfg)


def _redis(args: argparse.Namespace):
    from ops_project.cache.redis_client import connect
    from ops_project.common.errors import ConfigError

    cfg, clients = _load(args)
    url = clients.redis_url()
    if url is None:
        raise ConfigError(f"environment variable {cfg.cache.redis_url_env} (named by cache.redis_url_env) is not "
                          f"set: export the Redis URL there, redis://[:password@]host:6379/0")
    return cfg, clients, connect(url)


def cmd_warm(args: argparse.Namespace) -> int:
    from datetime import date, datetime

    from ops_project.cache.warmup import problems, run
    from ops_project.common.errors import UnknownNameError

    both = not args.redis and not args.http
    cfg, clients = _load(args)
    try:
        start = date.fromisoformat(args.start_date) if args.start_date else datetime.now(cfg.tz).date()
    except ValueError:
        raise UnknownNameError(f"--start-date {args.start_date!r} is not a date (YYYY-MM-DD)") from None
    client, why = None, "not asked (--http only)"
    if args.redis or both:
        if args.redis or clients.redis_url():
            cfg, clients, client = _redis(args)  # --redis asked for it: a missing URL is an error
        else:
            why = f"not configured ({cfg.cache.redis_url_env} is not set)"
    report = run(cfg.cache, clients.cache_source().path, start, redis_client=client, redis_why=why,
                 http=args.http or both)
    if args.json == "-":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    elif args.json:
        write_json(args.json, report)
    if args.json != "-":
        _print(report)
    found = problems(report, cfg.cache.min_coverage)
    for line in found:
        print(f"error: {line}", file=sys.stderr)
    return 1 if found else 0


def _print(report: dict) -> None:
    r, h = report["redis"], report["http"]
    if "not_run" in r:
        print(f"redis: {r['not_run']}")
    else:
        print(f"redis: {r['warmed']} of {r['requested']} keys warmed ({r['tenants']} tenants, {r['days'][0]} to "
              f"{r['days'][1]}) in {r['seconds']:.2f} s, {r['keys_per_second']} keys/s; TTLs "
              f"{r['ttl_range'][0]}-{r['ttl_range'][1]} s; {r['failed']} failed")
        for line in [*r["errors"], r.get("evictions"), r.get("expiry_alarm")]:
            if line:
                print(f"  {line}")
    if h is None:
        return
    if "not_run" in h:
        print(f"http: {h['not_run']}")
        return
    print(f"http: {h['warmed']} of {h['requested']} requests warmed, {h['failed']} failed, coverage "
          f"{h['coverage']:.1%} ({h['hits']} HIT) in {h['seconds']:.2f} s; p95 cold {h['p95_ms_cold']} ms, warm "
          f"{h['p95_ms_warm']} ms; {h['backoffs']} back-offs")
    for line in h["errors"] + [f"not cached (CDN configuration): {u}" for u in h["configuration_errors"]]:
        print(f"  {line}")


def cmd_status(args: argparse.Namespace) -> int:
    from ops_project.cache.status import status

    cfg, _clients, client = _redis(args)
    out = status(client, cfg.cache.key_prefix)
    if args.json == "-":
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return 0
    if args.json:
        write_json(args.json, out)
    ratio = out["hit_ratio"]
    print(f"{out['keys']} availability keys under {cfg.cache.key_prefix}avail:*; hit ratio "
          f"{'—' if ratio is None else f'{ratio:.1%}'} ({out['keyspace_hits']} hits, {out['keyspace_misses']} misses "
          f"since the server started); {out['evicted_keys']} evicted; used memory {out['used_memory']} bytes")
    for minute, n in out["expiry_per_minute"].items():
        print(f"  {minute}  {n:>8}  {'#' * max(1, round(40 * n / max(out['expiry_per_minute'].values())))}")
    if out["expiry_alarm"]:
        print(f"  {out['expiry_alarm']}")
    return 0


def add_parsers(sub) -> list[argparse.ArgumentParser]:
    csub = group(sub, "cache", "the availability cache in Redis: warm it, see its state")
    warm = command(csub, "warm", "write every tenant x service x day's availability into Redis",
                   "Computes availability for the next cache.availability_days days from a read-only\n"
                   "connection to the booking database (cache.source), as the booking API serves it, and writes\n"
                   "it under {key_prefix}avail:{tenant}:{service}:{day} with TTLs spread by cache.ttl_jitter.\n"
                   "The Redis URL comes from the variable cache.redis_url_env names. Then requests the busiest\n"
                   "tenants' availability, cache.http.urls and the sitemap through cache.http.base_url (the CDN)\n"
                   "and requests them again to read the cache status. Exit 1 when a key failed, Redis evicted\n"
                   "keys, or the CDN coverage is under cache.min_coverage.")
    warm.add_argument("--redis", action="store_true", help="warm Redis only (default: both, Redis when its URL is set)")
    warm.add_argument("--http", action="store_true", help="warm the CDN only, through cache.http.base_url")
    warm.add_argument("--start-date", metavar="YYYY-MM-DD", help="the first day (default: today, configured "
                                                                 "time zone)")
    warm.add_argument("--json", metavar="OUT", help="write the report as JSON to OUT (- for stdout)")
    warm.set_defaults(func=cmd_warm)
    st = command(csub, "status", "availability keys in Redis, when they expire, and the hit ratio",
                 "Counts the availability keys (SCAN, never KEYS), groups their expiry by minute and reads\n"
                 "keyspace hits and misses from INFO.")
    st.add_argument("--json", metavar="OUT", help="write the status as JSON to OUT (- for stdout)")
    st.set_defaults(func=cmd_status)
    return [warm, st]
