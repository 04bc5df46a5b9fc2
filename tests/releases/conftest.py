"""Fixtures shared by the release tests: the real demo API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import free_ports


@pytest.fixture
def api(tmp_path, demo_db):
    """The demo API, for real, on 127.0.0.1; restartable with another version or database."""
    procs = []

    def start(version: str, db: Path = demo_db, latency_ms: int = 0) -> str:
        port = free_ports(1)[0]
        proc = subprocess.Popen([sys.executable, "-m", "ops_project", "demo-api", "--port", str(port), "--version",
                                 version, "--db", str(db), "--latency-ms", str(latency_ms)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={k: v for k, v in os.environ.items() if k != "OPS_REDIS_URL"})  # never shared Redis
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(url + "/version", timeout=1)
                return url
            except httpx.HTTPError:
                time.sleep(0.1)
        pytest.fail(f"demo API did not start: {proc.stderr.read1(4000) if proc.poll() is not None else ''}")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def repo(tmp_path) -> Path:
    """A release repository with one commit tagged v1.0.0."""
    from tests.releases.test_releases import git

    path = tmp_path / "booking.git"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "commit", "-q", "--allow-empty", "-m", "first")
    git(path, "tag", "v1.0.0")
    return path
