"""HTTP/CDN warming against real servers: nginx with ``proxy_cache`` in front of the demo API (the CDN), and a
small origin of the test's own for the hard cases (429 then 200, DYNAMIC, HTML where JSON was expected, a
sitemap index with a gzipped sitemap, a sitemap that does not parse)."""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import sys
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ops_project.cache.config import HttpWarmConfig
from ops_project.cache.http_warm import cache_status, warm
from ops_project.cache.redis_client import CacheError
from ops_project.cache.warm_list import busiest
from tests.conftest import local_region
from tests.servers import nginx_cdn

DAYS = [date(2026, 12, 8), date(2026, 12, 9)]


def test_warming_through_nginx_then_every_url_answers_hit(api, demo_db, tmp_path, write_config):
    origin = api("v3.0.0")
    con = sqlite3.connect(demo_db)
    urls = busiest(con, 6, DAYS)
    con.close()
    assert len(urls) == 12 and all("/availability?date=" in u for u in urls)
    with nginx_cdn(origin) as cdn:
        settings = HttpWarmConfig(base_url=cdn.url, concurrency=3, urls=["/tenants/x/services", "/uncached/health"],
                                  variants=[{"Accept-Language": "en"}, {"Accept-Language": "af"}])
        report = warm(settings, urls)
        # the unknown tenant's page is a 404: a failure, named; the BYPASS route is a configuration error
        assert report["requested"] == 2 * 14 and report["failed"] == 2
        assert any("/tenants/x/services: HTTP 404" in e for e in report["errors"])
        assert report["configuration_errors"] == ["/uncached/health (BYPASS)"]
        assert report["hits"] == 2 * 12 and report["misses"] == 0  # each language its own cached variant
        assert report["coverage"] == round(24 / 26, 4)
        assert report["p95_ms_cold"] is not None and report["p95_ms_warm"] is not None
        again = warm(HttpWarmConfig(base_url=cdn.url, variants=[{"Accept-Language": "en"}]), urls[:2])
        assert again["coverage"] == 1.0
        # the CLI, as on-call runs it: --http only, the busiest 4 pairs x 2 days from the configuration
        config = write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                              [local_region(tmp_path, "af-south-1")],
                              cache={"availability_days": 2, "http": {"base_url": cdn.url, "busiest": 4},
                                     "min_coverage": 0.9})
        done = subprocess.run([sys.executable, "-m", "ops_project", "--config", str(config), "cache", "warm", "--http",
                               "--json", "-"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)
        assert out["redis"]["not_run"].startswith("not asked") and out["http"]["requested"] == 8
        assert out["http"]["coverage"] == 1.0
        cold = subprocess.run([sys.executable, "-m", "ops_project", "--config", str(config), "cache", "warm", "--http",
                               "--start-date", "2027-03-01"], capture_output=True, text=True, timeout=120)
        assert cold.returncode == 0 and "coverage 100.0%" in cold.stdout  # unseen days: warmed, then HIT


class Origin(BaseHTTPRequestHandler):
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        with self.lock:
            n = self.calls[self.path] = self.calls.get(self.path, 0) + 1
        if self.path.startswith("/flaky"):
            if n <= 2:
                return self._send(429, b"slow down", "text/plain", {"Retry-After": "1"})
            return self._send(200, b'{"ok": true}', "application/json", {"CF-Cache-Status": "HIT"})
        if self.path == "/dynamic":
            return self._send(200, b"{}", "application/json", {"CF-Cache-Status": "DYNAMIC"})
        if self.path.startswith("/tenants/html/availability"):
            return self._send(200, b"<html>Sign in</html>", "text/html", {"X-Cache": "HIT"})
        if self.path == "/sitemap.xml":
            base = f"http://127.0.0.1:{self.server.server_port}"
            return self._send(200, (f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                                    f'<sitemap><loc>{base}/pages.xml.gz</loc></sitemap>'
                                    f'<sitemap><loc>http://127.0.0.2:9/elsewhere.xml</loc></sitemap>'  # never fetched
                                    f'</sitemapindex>').encode(),
                              "application/xml", {})
        if self.path == "/pages.xml.gz":
            base = f"http://127.0.0.1:{self.server.server_port}"
            body = (f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>{base}/page/a</loc></url>'
                    f'<url><loc>{base}/page/b</loc></url><url><loc>https://elsewhere.example/c</loc></url></urlset>')
            return self._send(200, gzip.compress(body.encode()), "application/gzip", {})
        if self.path == "/broken.xml":
            return self._send(200, b"<urlset><url>", "application/xml", {})
        if self.path.startswith("/page/"):
            return self._send(200, b"page", "text/html", {"Age": "12"})
        return self._send(404, b"no", "text/plain", {})

    def _send(self, status: int, body: bytes, kind: str, headers: dict):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def origin():
    Origin.calls = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_429_slows_down_dynamic_is_a_configuration_error_html_is_a_failure(origin):
    settings = HttpWarmConfig(base_url=origin, concurrency=4, retries=3)
    report = warm(settings, ["/flaky/1", "/flaky/2", "/dynamic", "/tenants/html/availability?date=2026-12-08"])
    assert report["backoffs"] >= 4 and report["lowest_concurrency"] < 4  # slowed down, then went on
    assert Origin.calls["/flaky/1"] >= 3 and report["failed"] == 1
    assert any("where JSON was expected" in e for e in report["errors"])
    assert report["configuration_errors"] == ["/dynamic (DYNAMIC)"]
    assert report["hits"] == 2 and report["coverage"] == round(2 / 3, 4)


def test_a_sitemap_index_with_gzip_and_a_broken_sitemap(origin):
    report = warm(HttpWarmConfig(base_url=origin, sitemap=f"{origin}/sitemap.xml"), [])
    # the other site's page is not ours to warm, and the index's sitemap on another host is never fetched
    assert report["requested"] == 2 and report["hits"] == 2
    with pytest.raises(CacheError, match="broken.xml does not parse as XML"):
        warm(HttpWarmConfig(base_url=origin, sitemap=f"{origin}/broken.xml"), [])


def test_cache_status_headers():
    assert cache_status({"cf-cache-status": "HIT"}) == "HIT"
    assert cache_status({"x-cache": "Hit from cloudfront"}) == "HIT"
    assert cache_status({"x-cache-status": "EXPIRED"}) == "EXPIRED"
    assert cache_status({"cf-cache-status": "DYNAMIC"}) == "DYNAMIC"
    assert cache_status({"age": "0"}) == "MISS" and cache_status({}) == "NONE"



def test_the_access_logs_most_requested_pages(tmp_path):
    from ops_project.cache.warm_list import access_log_top

    line = '127.0.0.1 - - [02/Dec/2026:08:00:00 +0000] "{m} {p} HTTP/1.1" {s} 512 "-" "Mozilla/5.0"\n'
    rows = [("GET", "/a", 200)] * 5 + [("GET", "/b", 200)] * 3 + [("GET", "/c", 404)] * 9 + [("POST", "/d", 200)] * 7
    log = tmp_path / "access.log.gz"
    with gzip.open(log, "wt") as fh:
        fh.writelines(line.format(m=m, p=p, s=s) for m, p, s in rows)
    assert access_log_top(log, 10) == ["/a", "/b"]  # GET 200 only, most requested first
    assert access_log_top(log, 1) == ["/a"]
    junk = tmp_path / "junk.log"
    junk.write_text("not an access log\n")
    with pytest.raises(CacheError, match="none of its 1 lines is a request"):
        access_log_top(junk, 10)
