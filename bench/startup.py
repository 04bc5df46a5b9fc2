"""Start-up cost of the code location, against Dagster's own floor on the same machine and in the same run.

Measures (median of ``--rounds`` runs of each, every run a fresh process):

- ``import``: importing ``ops_project.definitions`` after ``dagster`` is imported (our share of every
  code-location load, every run worker and every step process);
- ``validate (one asset)``: ``dagster definitions validate`` of a module that defines a single asset: the floor
  that no code location can go under;
- ``validate (ops_project)``: the same command on this project's definitions;
- ``dg check defs``: the command the issue names, in this project.

Usage: ``.venv/bin/python bench/startup.py --rounds 5``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
IMPORT = ("import time; t0 = time.perf_counter(); import dagster; t1 = time.perf_counter(); "
          "import ops_project.definitions; print(time.perf_counter() - t1)")
ONE_ASSET = "from dagster import Definitions, asset\n\n@asset\ndef a(): ...\n\ndefs = Definitions(assets=[a])\n"


def _timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="runs of each command (the median is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        floor = Path(tmp) / "one_asset.py"
        floor.write_text(ONE_ASSET)
        validate = [str(BIN / "dagster"), "definitions", "validate"]
        commands = {
            "validate (one asset)": [*validate, "-f", str(floor)],
            "validate (ops_project)": [*validate, "-m", "ops_project.definitions"],
            "dg check defs": [str(BIN / "dg"), "check", "defs"],
        }
        results = {"import": []} | {name: [] for name in commands}
        for _ in range(args.rounds):  # interleaved, so that a busy moment costs every command alike
            out = subprocess.run([sys.executable, "-c", IMPORT], cwd=REPO, check=True, capture_output=True, text=True)
            results["import"].append(float(out.stdout.strip().splitlines()[-1]))
            for name, cmd in commands.items():
                results[name].append(_timed(cmd))
    for name, values in results.items():
        print(f"{name:<24} median {statistics.median(values):6.2f} s  (min {min(values):.2f}, max {max(values):.2f})")


if __name__ == "__main__":
    main()
