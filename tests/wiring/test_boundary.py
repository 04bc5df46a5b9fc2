"""The Dagster boundary: nothing under ops_project/ imports dagster except ops_project/definitions.py.

The rule is ruff's banned-API check (TID251, configured in pyproject.toml), which CI runs with
``ruff check .`` before the tests; these tests prove the rule bites where it should and nowhere else,
and that the domain really loads without Dagster.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).parent / "ruff"
OFFENDER = "from dagster import asset\n\n\nprint(asset)\n"


def _ruff_on(source: str, as_file: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUFF), "check", "--no-cache", "--select", "TID251", "--stdin-filename", as_file, "-"],
                          input=source, capture_output=True, text=True, cwd=REPO)


@pytest.mark.parametrize("as_file", ["ops_project/backups/new_module.py", "ops_project/common/helpers.py",
                                     "ops_project/clients.py", "ops_project/cli/__init__.py"])
def test_a_domain_module_importing_dagster_fails_the_lint(as_file):
    for source in (OFFENDER, "import dagster._core.storage.tags as t\n\n\nprint(t)\n",
                   "def f():\n    import dagster_postgres\n\n    return dagster_postgres\n"):
        out = _ruff_on(source, as_file)
        assert out.returncode == 1 and "TID251" in out.stdout, (as_file, source, out.stdout + out.stderr)
        assert "domain code stays free of Dagster" in out.stdout


@pytest.mark.parametrize("as_file", ["ops_project/definitions.py", "assets/new.py", "resources/new.py",
                                     "sensors/new.py", "jobs/new.py", "schedules/new.py", "tests/test_new.py"])
def test_the_wiring_may_import_dagster(as_file):
    out = _ruff_on(OFFENDER, as_file)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_tree_holds_the_line():
    out = subprocess.run([str(RUFF), "check", "--no-cache", "--select", "TID251", "ops_project"],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stdout
    # An independent look at the same line: parse every module and list what it imports.
    offenders = []
    for path in (REPO / "ops_project").rglob("*.py"):
        if path == REPO / "ops_project" / "definitions.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0].startswith("dagster")]
    assert offenders == []


def test_the_domain_and_the_cli_load_without_dagster():
    modules = sorted({".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                      for p in (REPO / "ops_project").rglob("*.py")
                      if p.name not in ("definitions.py", "__main__.py")})
    code = ("import importlib, sys\n"
            f"for m in {modules!r}:\n    importlib.import_module(m)\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster'))\n"
            "print(loaded)\nsys.exit(1 if loaded else 0)\n")
    env = {k: v for k, v in os.environ.items() if k != "OPS_CONFIG"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(modules) > 30  # every domain module was imported
