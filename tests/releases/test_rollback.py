"""Roll back only what we validated (issue #9): no booking on a release that is not deployed, a verdict even
for answers that are not the API's, a fresh look at /version before rolling back, and a rollback command that
can neither hang us nor leak a secret."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ops_project.releases.config import ReleaseTarget
from ops_project.releases.rollback import rollback
from ops_project.releases.tags import RepoUnreachable, remote_tags
from ops_project.releases.validate import validate
from tests.releases.test_releases import appointments


def target(url: str, **kw) -> ReleaseTarget:
    return ReleaseTarget(base_url=url, requests_per_endpoint=2, rollout_timeout_seconds=0.2, **kw)


@pytest.fixture
def fake_service():
    """A real HTTP server answering what each test scripts: {path: callable(count) -> (status, type, body)}."""
    servers = []

    def start(routes: dict) -> str:
        calls: dict[str, int] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                path = self.path.split("?", 1)[0]
                calls[path] = calls.get(path, 0) + 1
                route = routes.get(path) or next((r for p, r in routes.items() if p.endswith("*") and
                                                  path.startswith(p[:-1])), None)
                status, kind, body = route(calls[path]) if route else (404, "text/plain", "no such page")
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()


def html(_n: int) -> tuple[int, str, str]:
    return 200, "text/html", "<html><body>502 Bad Gateway (login page)</body></html>"


def test_a_version_that_does_not_match_makes_no_booking(api, demo_db):
    before = appointments(demo_db)
    wrong = validate("v1.4.2", target(api("v1.4.1")))
    smoke = next(c for c in wrong.checks if c.name == "smoke_flow")
    assert not wrong.passed and not smoke.passed and "skipped" in smoke.message
    assert appointments(demo_db) == before


def test_answers_that_are_not_the_apis_give_a_verdict_not_a_crash(fake_service):
    everything_html = fake_service({"/version": html, "/health": html, "/tenants/*": html})
    verdict = validate("v1.0.0", target(everything_html))
    version = next(c for c in verdict.checks if c.name == "version")
    assert not verdict.passed and "not JSON" in version.message and "text/html" in version.message
    wrong_shape = fake_service({"/version": lambda _n: (200, "application/json", json.dumps({"version": "v1.0.0"})),
                                "/health": lambda _n: (200, "application/json", "{}"),
                                "/tenants/*": lambda _n: (200, "application/json", "[1, 2, 3]")})
    verdict = validate("v1.0.0", target(wrong_shape))
    smoke = next(c for c in verdict.checks if c.name == "smoke_flow")
    assert not smoke.passed and "not an object" in smoke.message


def test_no_rollback_when_another_release_was_deployed_meanwhile(fake_service, tmp_path):
    """The release is broken, but by the time the verdict is in, v9.9.9 is deployed: it must not be undone."""
    log = tmp_path / "rollback.log"
    script = tmp_path / "rollback.sh"
    script.write_text(f"#!/bin/sh\necho \"$1\" > {log}\n")
    script.chmod(0o755)

    def version(n: int) -> tuple[int, str, str]:  # the check, then two latency samples, then the newer release
        return 200, "application/json", json.dumps({"version": "v1.0.0" if n <= 3 else "v9.9.9"})

    url = fake_service({"/version": version, "/health": lambda _n: (500, "text/plain", "down")})
    verdict = validate("v1.0.0", target(url), previous=("v0.9.0", {}), rollback_command=[str(script)])
    assert not verdict.passed and verdict.rollback["skipped"] and not log.exists()
    assert "now serves 'v9.9.9'" in verdict.rollback["output"] and "not run" in verdict.markdown()


def test_a_rollback_that_hangs_is_killed_at_its_timeout():
    started = time.monotonic()
    result = rollback(["sh", "-c", "echo started; (sleep 60) & sleep 60"], "v1.0.0", timeout=2)
    assert time.monotonic() - started < 15
    assert result["timed_out"] and result["exit_code"] == -1 and "started" in result["output"]
    leaves_a_child = rollback(["sh", "-c", "(sleep 60) & echo done"], "v1.0.0", timeout=2)  # exits, child holds stdout
    assert time.monotonic() - started < 30 and "done" in leaves_a_child["output"]


def test_a_rollback_gets_a_minimal_environment_and_its_output_is_scrubbed(monkeypatch):
    monkeypatch.setenv("OPS_T_DB_PASSWORD", "pw-3f9a1c77")
    monkeypatch.setenv("OPS_T_DEPLOY_TOKEN", "tok-81be2d")
    result = rollback(["sh", "-c", "env; echo \"using token $OPS_T_DEPLOY_TOKEN and pw-3f9a1c77\""], "v1.0.0",
                      env_names=["OPS_T_DEPLOY_TOKEN"], secrets=["pw-3f9a1c77", "tok-81be2d"])
    out = result["output"]
    assert result["exit_code"] == 0 and "OPS_T_DB_PASSWORD" not in out  # not configured: not passed on
    assert "OPS_T_DEPLOY_TOKEN=[redacted]" in out and "pw-3f9a1c77" not in out and "tok-81be2d" not in out


def test_a_repository_argument_is_never_an_option(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(RepoUnreachable):
        remote_tags(f"--upload-pack=touch {marker}")
    assert not marker.exists()
    assert os.path.exists(tmp_path)


def test_a_token_in_the_repository_url_is_never_shown(tmp_path, demo_db, write_config):
    from dagster import DagsterInstance, build_sensor_context

    from ops_project.config import load_config
    from ops_project.definitions import build_definitions
    from ops_project.releases.tags import redact_repo
    from tests.conftest import local_region
    from tests.servers import free_ports

    port = free_ports(1)[0]  # nothing listens: the tick fails, and says so without the secrets
    repo = f"https://deploy:ghp_tok3n5ecret@127.0.0.1:{port}/booking.git?private_token=glpat-s3cr3t"
    assert redact_repo(repo) == f"https://127.0.0.1:{port}/booking.git"
    assert redact_repo("git@git.example.com:booking.git") == "git@git.example.com:booking.git"
    cfg = load_config(write_config([{"name": "booking", "engine": "sqlite", "path": str(demo_db)}],
                                   [local_region(tmp_path, "r1")], releases={"repo": repo}))
    sensor = build_definitions(cfg).get_repository_def().get_sensor_def("release_tag_sensor")
    with DagsterInstance.ephemeral() as instance:
        result = sensor.evaluate_tick(build_sensor_context(instance=instance))
    shown = " ".join([sensor.description or "", *(result.skip_message or "",)])
    assert f"127.0.0.1:{port}/booking.git" in shown
    for secret in ("ghp_tok3n5ecret", "glpat-s3cr3t", "deploy:"):
        assert secret not in shown


def test_a_service_that_stopped_answering_may_still_be_the_broken_release(tmp_path):
    """No answer from /version is not "another release is live": the failed one may be what crashed."""
    from ops_project.releases.config import ReleaseTarget
    from ops_project.releases.validate import validate

    log = tmp_path / "rolled-back"
    script = tmp_path / "rollback.sh"
    script.write_text(f"#!/bin/sh\ntouch {log}\n")
    script.chmod(0o755)
    target = ReleaseTarget(base_url="http://127.0.0.1:9", rollout_timeout_seconds=0, requests_per_endpoint=1,
                           request_timeout_seconds=1)
    verdict = validate("v1.1.0", target, previous=("v1.0.0", {}), rollback_command=[str(script)])
    assert not verdict.passed and verdict.broken_release_live and not log.exists()
    assert "does not answer /version" in verdict.rollback_summary()
