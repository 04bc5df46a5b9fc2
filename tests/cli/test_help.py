"""The CLI's help is plain text that documents every flag and the exit codes; bad usage (exit 2) is told apart
from a failed operation (exit 1)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from ops_project.cli import build_parser
from tests.conftest import local_region

REPO = Path(__file__).resolve().parents[2]


def _commands(parser: argparse.ArgumentParser, path: tuple = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "OPS_CONFIG"}
    return subprocess.run([sys.executable, "-m", "ops_project", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=60)


def test_every_flag_of_every_command_is_documented():
    undocumented = [f"{' '.join(path) or '(top)'} {action.option_strings[0]}"
                    for path, parser in _commands(build_parser()) for action in parser._actions
                    if action.option_strings and not action.help]
    assert undocumented == []


def test_help_is_plain_text_with_the_exit_codes():
    commands = [path for path, _ in _commands(build_parser())]
    assert ("backups", "restore") in commands and ("demo-api",) in commands
    for path in commands:
        shown = _cli(*path, "--help")
        assert shown.returncode == 0, path
        text = shown.stdout
        assert "exit codes:" in text and re.search(r"^\s+2\s+bad usage", text, re.M), path
        assert re.search(r"^\s+3\s+untrusted", text, re.M), path
        assert not re.search(r"``|\*\*|:func:|:class:|^#+ ", text, re.M), (path, text)  # no Markdown or RST
        assert "(default: None)" not in text and "(default: False)" not in text, path


def test_bad_usage_exits_2_and_a_failure_exits_1(tmp_path, demo_db, write_config):
    config = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                          [local_region(tmp_path, "af-south-1")])
    missing_flag = _cli("--config", str(config), "backups", "verify")
    assert missing_flag.returncode == 2 and "--database" in missing_flag.stderr
    unknown = _cli("--config", str(config), "backups", "list", "--database", "bookings")
    assert unknown.returncode == 2
    assert "no database named 'bookings' (configured: booking)" in unknown.stderr and "Traceback" not in unknown.stderr
    unknown_region = _cli("--config", str(config), "backups", "list", "--region", "mars-1")
    assert unknown_region.returncode == 2 and "no region named 'mars-1'" in unknown_region.stderr
    (tmp_path / "regions" / "af-south-1").rmdir()  # the region's volume is not mounted: a failure, not usage
    failed = _cli("--config", str(config), "backups", "list")
    assert failed.returncode == 1 and "af-south-1" in failed.stderr and "Traceback" not in failed.stderr
