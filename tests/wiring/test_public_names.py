"""The names other tools and people rely on, frozen in ``public_names.json``.

Asset keys, asset checks, jobs, schedules, sensors, resource keys, partition definitions, the CLI's
verbs, options and exit codes, every ops.yaml key with its default, and the object layout a backup,
a verification and a drill leave in a region. The snapshot is built only through public entry points
(``build_definitions``, ``load_config``, ``python -m ops_project``), so a change that only moves code
leaves it unchanged; a change that renames something must update the file on purpose:

    OPS_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/wiring/test_public_names.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance, MultiPartitionsDefinition, TimeWindowPartitionsDefinition

from ops_project.config import OpsConfig, load_config
from ops_project.definitions import build_definitions
from tests.conftest import local_region

SNAPSHOT = Path(__file__).with_name("public_names.json")
REPO = Path(__file__).resolve().parents[2]


def _partitions(pdef) -> object:
    if pdef is None:
        return None
    if isinstance(pdef, MultiPartitionsDefinition):
        return {"multi": {d.name: _partitions(d.partitions_def) for d in pdef.partitions_defs}}
    if isinstance(pdef, TimeWindowPartitionsDefinition):
        # the shipped default's windows begin at its first backup (today, on a new machine): not a name
        return {"time_window": {"cron": pdef.cron_schedule, "timezone": pdef.timezone, "fmt": pdef.fmt}}
    name = getattr(pdef, "name", None)
    if name:
        return {"dynamic": name}
    return {"static": list(pdef.get_partition_keys())}


def dagster_names(cfg: OpsConfig) -> dict:
    defs = build_definitions(cfg)
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "partitions": _partitions(node.partitions_def),
            "checks": sorted(c.name for c in node.check_keys),
            "kinds": sorted(node.kinds),
        }
    repo = defs.get_repository_def()
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__ASSET_JOB"):
            continue
        jobs[job.name] = {"tags": dict(sorted(job.tags.items())), "partitions": _partitions(job.partitions_def)}
    schedules = {s.name: {"cron": s.cron_schedule, "timezone": s.execution_timezone, "job": s.job_name,
                          "default_status": s.default_status.value}
                 for s in sorted(repo.schedule_defs, key=lambda s: s.name)}
    sensors = {s.name: {"jobs": sorted(j.name for j in s.jobs) if s.has_jobs else [],
                        "minimum_interval_seconds": s.minimum_interval_seconds,
                        "default_status": s.default_status.value}
               for s in sorted(repo.sensor_defs, key=lambda s: s.name)}
    return {"assets": assets, "jobs": jobs, "schedules": schedules, "sensors": sensors,
            "resources": sorted(defs.resources)}


def _walk_parser(parser: argparse.ArgumentParser, path: str, out: dict) -> None:
    options, subcommands = [], None
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subcommands = action
        elif action.option_strings and action.help != argparse.SUPPRESS:
            options.append("/".join(action.option_strings) + ("" if action.nargs == 0 else " VALUE")
                           + (" (required)" if action.required else ""))
    out[path or "(top)"] = sorted(options)
    if subcommands:
        for name, sub in sorted(subcommands.choices.items()):
            _walk_parser(sub, f"{path} {name}".strip(), out)


def cli_names() -> dict:
    from ops_project.cli import build_parser

    verbs: dict = {}
    _walk_parser(build_parser(), "", verbs)
    return verbs


def config_keys() -> dict:
    """Every ops.yaml key as a dotted path, with its default (the JSON schema, $refs resolved)."""
    schema = OpsConfig.model_json_schema()
    defs = schema.get("$defs", {})
    out: dict = {}

    def resolve(node: dict) -> dict:
        while "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        return node

    def walk(node: dict, prefix: str) -> None:
        node = resolve(node)
        for name, prop in node.get("properties", {}).items():
            key = f"{prefix}{name}"
            out[key] = {"default": prop.get("default", "(required)" if name in node.get("required", []) else None)}
            targets = [resolve(p) for p in prop.get("anyOf", [prop])]
            for target in targets:
                if target.get("type") == "array" and "items" in target:
                    target = resolve(target["items"])
                    key_for_items = key + "[]"
                else:
                    key_for_items = key
                if "properties" in target:
                    walk(target, key_for_items + ".")
    walk(schema, "")
    return dict(sorted(out.items()))


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPS_CONFIG"}
    return subprocess.run([sys.executable, "-m", "ops_project", "--config", str(config), *args],
                          capture_output=True, text=True, cwd=REPO, env=env)


def region_layout_and_exit_codes(tmp_path: Path, demo_db: Path, write_config) -> tuple[dict, dict]:
    path = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                        [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")])
    codes = {}
    codes["backups take"] = _cli(path, "backups", "take", "--database", "booking", "--quiet").returncode
    codes["backups verify latest (good)"] = _cli(path, "backups", "verify", "--database", "booking").returncode
    codes["backups verify (no such id)"] = _cli(path, "backups", "verify", "--database", "booking",
                                                "--backup-id", "19990101T000000Z").returncode
    codes["bad usage"] = _cli(path, "backups", "verify").returncode
    codes["unknown region"] = _cli(path, "backups", "list", "--region", "nowhere").returncode
    # A corrupt backup: flip a byte of the DR copy's data, verify by id (exit 3: cannot be trusted).
    dr_root = tmp_path / "regions" / "eu-west-1"
    data = next(dr_root.glob("backups/booking/*/data.*"))
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    codes["backups verify (corrupt)"] = _cli(path, "backups", "verify", "--database", "booking", "--backup-id",
                                             data.parent.name, "--no-record").returncode

    cfg = load_config(path)
    with DagsterInstance.ephemeral() as instance:
        defs = build_definitions(cfg)
        drill_job = defs.resolve_job_def("dr_drill_job")
        week = drill_job.partitions_def.get_last_partition_key()
        drill_job.execute_in_process(partition_key=week, instance=instance, raise_on_error=False)

    layout = {}
    manifest_keys = None
    for region in ("af-south-1", "eu-west-1"):
        root = tmp_path / "regions" / region
        names = set()
        for file in root.rglob("*"):
            if file.is_file():
                rel = file.relative_to(root).as_posix()
                rel = re.sub(r"/\d{8}T\d{6}Z(-\d+)?/", "/<backup_id>/", rel)
                rel = re.sub(r"^drills/[^/]+/", "drills/<week>/", rel)
                names.add(rel)
                if rel.endswith("manifest.json") and manifest_keys is None:
                    manifest_keys = sorted(json.loads(file.read_text()))
        layout[region] = sorted(names)
    layout["manifest.json keys"] = manifest_keys
    return layout, codes


def test_public_names_are_unchanged(tmp_path, demo_db, write_config):
    cfg = load_config(REPO / "ops.yaml")
    actual = {
        "dagster (shipped ops.yaml)": dagster_names(cfg),
        "cli": cli_names(),
        "ops.yaml keys": config_keys(),
    }
    actual["region layout"], actual["exit codes"] = region_layout_and_exit_codes(tmp_path, demo_db, write_config)
    actual = json.loads(json.dumps(actual, default=str))
    if os.environ.get("OPS_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    for section in expected:
        assert actual.get(section) == expected[section], f"public names changed in section {section!r}"
    assert set(actual) == set(expected)
