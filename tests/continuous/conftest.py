"""Litestream for real: ``python -m ops_project continuous run`` as a process, as a supervisor starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ops_project.config import load_config
from ops_project.continuous.replicas import survey


def check_evaluation(result, name):
    """The one evaluation of the asset check ``name`` in an in-process run's result."""
    (ev,) = [e.event_specific_data for e in result.all_events
             if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.event_specific_data.check_name == name]
    return ev


class Litestream:
    def __init__(self, config: Path, log: Path):
        self.config, self.log, self.proc = config, log, None

    def start(self) -> None:
        # an AWS_CA_BUNDLE naming a missing file makes Litestream fail: the clean environment must leave it behind
        env = dict(os.environ, AWS_CA_BUNDLE="/nonexistent/ca.pem", AWS_ACCESS_KEY_ID="wrong", AWS_PROFILE="nope")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "ops_project", "--config", str(self.config),
                                          "continuous", "run"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.proc = None

    def wait_replicated(self, timeout: float = 30.0) -> None:
        """Until every replica of every region holds something and advanced within the last few seconds."""
        cfg = load_config(self.config)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
            found = survey(cfg, datetime.now(UTC))
            if found and all(f.ok for _, f in found):
                return
            time.sleep(0.5)
        raise AssertionError(f"replicas not up in {timeout} s: {[f.text for _, f in found]}\n"
                             f"{self.log.read_text()[-3000:]}")


@pytest.fixture
def litestream(tmp_path):
    made = []

    @contextmanager
    def run(config: Path):
        ls = Litestream(config, tmp_path / f"litestream-{len(made)}.log")
        made.append(ls)
        ls.start()
        try:
            yield ls
        finally:
            ls.stop()

    yield run
    for ls in made:
        ls.stop()
