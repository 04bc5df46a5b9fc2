"""The shipped ``cache`` section on the embedded default: the demo API (reading through Redis) is what the HTTP
part warms and verifies; with the Redis URL both parts succeed and every URL answers HIT; with no cache
anywhere the warm-up fails and says the answers carry no cache status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import local_region
from tests.servers import free_ports, redis_server

SHIPPED = Path(__file__).resolve().parents[2] / "ops.yaml"


def _demo_api(config: Path, db: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_ports(1)[0]
    proc = subprocess.Popen([sys.executable, "-m", "ops_project", "--config", str(config), "demo-api", "--port",
                             str(port), "--version", "v1.0.0", "--db", str(db)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/health", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail(f"demo API did not start: {proc.stderr.read().decode()[-1500:]}")


def test_the_shipped_cache_section_against_the_demo_api(tmp_path, demo_db, write_config):
    cache = yaml.safe_load(SHIPPED.read_text())["cache"]
    assert cache["redis_url_env"] == "OPS_REDIS_URL" and cache["http"]["base_url"] == "http://127.0.0.1:8080"
    base = {k: v for k, v in os.environ.items() if k != "OPS_REDIS_URL"}
    with redis_server() as srv:
        port = free_ports(1)[0]
        cache["http"]["base_url"] = f"http://127.0.0.1:{port}"  # the shipped section, on this test's port
        cache["availability_days"] = 3
        config = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                              [local_region(tmp_path, "af-south-1")], cache=cache)
        env = {**base, "OPS_REDIS_URL": srv.url}
        for with_redis in (True, False):
            proc, url = _demo_api(config, demo_db, env if with_redis else base)
            cache["http"]["base_url"] = url
            config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "cache": cache}))
            try:
                done = subprocess.run([sys.executable, "-m", "ops_project", "--config", str(config), "cache", "warm",
                                       "--json", "-"], env=env if with_redis else base, capture_output=True,
                                      text=True, timeout=180)
            finally:
                proc.terminate()
                proc.wait(timeout=10)
            report = json.loads(done.stdout)
            if with_redis:
                assert done.returncode == 0, done.stderr
                assert report["redis"]["warmed"] == report["redis"]["requested"] > 0
                assert report["http"]["coverage"] == 1.0 and report["http"]["requested"] == 10 * 3
                assert report["redis"]["expiry_alarm"] is None  # the shipped jitter spreads the expiries
            else:  # no Redis: the API answers from the database, and nothing says HIT
                assert done.returncode == 1
                assert "OPS_REDIS_URL" in report["redis"]["not_run"]
                assert report["http"]["coverage"] == 0.0 and report["http"]["not_cached"] == 30
                assert "coverage 0.0% is under cache.min_coverage" in done.stderr
