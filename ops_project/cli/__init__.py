"""python -m ops_project: the tools on-call needs when Dagster itself is down.

Uses the same domain code as the assets and never imports Dagster, so it starts fast. One module
per command group (``backups``, ``demo``); this one parses and maps errors to the exit codes in
``exits``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ops_project.cli import backups, cache, capacity, continuous, demo, exits, queries
from ops_project.cli.parsing import root
from ops_project.common.errors import IntegrityError, OpsError, UnknownNameError

DESCRIPTION = """The tools on-call needs when Dagster itself is down: backups (take, list, verify, restore,
replicate, restore to a moment), continuous replication with Litestream, slow-query analysis, the
availability cache in Redis, capacity planning, and the demo database and API. The same code as the
Dagster assets, without Dagster."""


def build_parser() -> argparse.ArgumentParser:
    parser = root("python -m ops_project", DESCRIPTION)
    parser.add_argument("--config", help="configuration file (default: $OPS_CONFIG, else ops.yaml at the repo root)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    with_config = demo.add_parsers(sub) + backups.add_parsers(sub) + queries.add_parsers(sub) + cache.add_parsers(sub) \
        + capacity.add_parsers(sub) + continuous.add_parsers(sub)
    for p in with_config:  # --config is accepted after the command too
        p.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ops_project.backups.restore import NoBackupError

    try:
        return args.func(args)
    except NoBackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exits.NO_BACKUP
    except UnknownNameError as exc:  # bad usage, like an unknown flag: exit 2, as argparse does
        print(f"python -m ops_project: error: {exc}", file=sys.stderr)
        return exits.USAGE
    except IntegrityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exits.UNTRUSTED
    except OpsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exits.FAILED
    except KeyboardInterrupt:
        print("interrupted: nothing was marked complete", file=sys.stderr)
        return exits.INTERRUPTED
