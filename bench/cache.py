"""Cache warming's write path against ``redis-cli --pipe``, in one run on a redis-server of the bench's own.

1. The same N keys and values (real availability bodies of the demo database, cycled, with jittered TTLs):
   written by ours (``cache.redis_client.BulkWriter``: packed batches, hiredis replies) and loaded by
   ``redis-cli --pipe`` from a RESP file prepared beforehand (its reading of the file is in its time, the
   preparation is not). The database is flushed between the two.
2. The end-to-end warm of the demo database (compute from SQLite + write), keys/s.

Usage: ``.venv/bin/python bench/cache.py --keys 200000 [--demo-mb 64]`` (needs ``redis-server`` and
``redis-cli``).
"""

from __future__ import annotations

import argparse
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ops_project.cache import availability as avail  # noqa: E402
from ops_project.cache.config import CacheConfig  # noqa: E402
from ops_project.cache.keys import Ttls, availability_key, encode  # noqa: E402
from ops_project.cache.redis_client import BulkWriter  # noqa: E402
from ops_project.cache.warm_redis import read_only, warm  # noqa: E402
from ops_project.demo.database import generate  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(root: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(root)], stdout=subprocess.DEVNULL)
    import redis

    for _ in range(200):
        try:
            redis.Redis(port=port).ping()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit("redis-server did not start")


def bodies(db: Path, n: int) -> list[bytes]:
    con = read_only(db)
    out = []
    try:
        for tenant in avail.tenants(con):
            for _day, _sid, answer in avail.tenant_days(con, tenant, [date(2026, 12, 7)]):
                out.append(encode(answer))
                if len(out) >= n:
                    return out
    finally:
        con.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--demo-mb", type=float, default=64)
    args = parser.parse_args()
    import redis

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        db = generate(tmp / "booking.db", args.demo_mb, seed=42)
        proc, port = start_redis(tmp)
        try:
            client = redis.Redis(port=port)
            values = bodies(db, 500)
            ttls = Ttls(3600, 0.3, seed=1)
            rows = [(availability_key("b:", f"tenant-{i % 997:04d}", i, date(2026, 12, 7) + timedelta(days=i % 14)),
                     values[i % len(values)], ttls()) for i in range(args.keys)]
            mean_value = sum(len(v) for _k, v, _t in rows) / len(rows)
            pipe_file = tmp / "keys.resp"
            conn = client.connection_pool.get_connection()
            with open(pipe_file, "wb") as fh:
                for i in range(0, len(rows), 1000):
                    for chunk in conn.pack_commands([("SET", k, v, "EX", t) for k, v, t in rows[i:i + 1000]]):
                        fh.write(chunk)
            client.connection_pool.release(conn)
            random.seed(1)
            client.flushdb()
            began = time.perf_counter()
            with open(pipe_file, "rb") as fh:
                done = subprocess.run([shutil.which("redis-cli"), "-p", str(port), "--pipe"], stdin=fh,
                                      capture_output=True, text=True)
            cli_s = time.perf_counter() - began
            assert done.returncode == 0 and client.dbsize() == len(rows), done.stdout + done.stderr
            client.flushdb()
            began = time.perf_counter()
            writer = BulkWriter(client, 1000)
            for k, v, t in rows:
                writer.set(k, v, t)
            stats = writer.close()
            ours_s = time.perf_counter() - began
            assert stats.written == len(rows) and client.dbsize() == len(rows)
            print(f"{len(rows)} keys, values {mean_value:.0f} bytes on average")
            print(f"redis-cli --pipe  {cli_s:7.2f} s  {len(rows) / cli_s:10.0f} keys/s")
            print(f"ours (BulkWriter) {ours_s:7.2f} s  {len(rows) / ours_s:10.0f} keys/s  "
                  f"= {cli_s / ours_s:.0%} of redis-cli --pipe")
            client.flushdb()
            report = warm(db, client, CacheConfig(key_prefix="e:", availability_days=14), date(2026, 12, 7))
            print(f"end to end on a {db.stat().st_size / 2**20:.0f} MiB demo database: {report['warmed']} keys "
                  f"({report['tenants']} tenants x services x 14 days) in {report['seconds']:.2f} s = "
                  f"{report['keys_per_second']:.0f} keys/s")
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
