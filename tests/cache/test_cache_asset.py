"""``cache_warmup`` through Dagster: a release that passes deploy validation (against the demo API, for real)
is followed by a warm-up run, which fills the test's own Redis; a release that fails is not; without the Redis
URL the warm-up fails and names the variable."""

from __future__ import annotations

import json

from dagster import DagsterInstance, build_sensor_context

from ops_project.cache.keys import availability_key
from ops_project.config import load_config
from ops_project.definitions import build_definitions
from tests.cache.test_redis_warming import catalogue
from tests.conftest import local_region
from tests.releases.test_releases import git, tick
from tests.servers import redis_server


def _cfg(write_config, tmp_path, demo_db, repo, url):
    return load_config(write_config(
        [{"name": "booking", "engine": "sqlite", "path": str(demo_db)}], [local_region(tmp_path, "r1")],
        releases={"repo": str(repo), "target": {"base_url": url, "requests_per_endpoint": 5,
                                                 "rollout_timeout_seconds": 1}},
        cache={"redis_url_env": "OPS_TEST_CACHE_URL", "key_prefix": "rel:", "availability_days": 2,
               "ttl_seconds": 3600, "ttl_jitter": 0.5}))


def test_a_passing_release_is_followed_by_a_warm_up_and_a_failing_one_is_not(api, tmp_path, demo_db, repo,
                                                                                write_config, monkeypatch):
    url = api("v2.0.0")
    with redis_server() as srv:
        monkeypatch.setenv("OPS_TEST_CACHE_URL", srv.url)
        cfg = _cfg(write_config, tmp_path, demo_db, repo, url)
        defs = build_definitions(cfg)
        warm_sensor = defs.get_repository_def().get_sensor_def("cache_after_release_sensor")
        with DagsterInstance.ephemeral() as instance:
            first = tick(defs, instance)
            quiet = warm_sensor.evaluate_tick(build_sensor_context(instance=instance))
            assert quiet.run_requests == []  # no release validated yet: nothing to warm
            git(repo, "commit", "-q", "--allow-empty", "-m", "release")
            git(repo, "tag", "v2.0.0")
            (request,) = tick(defs, instance, first.cursor).run_requests
            assert defs.resolve_job_def("deploy_validation_job").execute_in_process(
                partition_key=request.partition_key, instance=instance, tags=request.tags).success
            after_pass = warm_sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=quiet.cursor))
            (warm_request,) = after_pass.run_requests
            assert warm_request.tags["ops/release"] == "v2.0.0" and warm_request.job_name in (None, "cache_warmup_job")
            run = defs.resolve_job_def("cache_warmup_job").execute_in_process(instance=instance,
                                                                               tags=warm_request.tags)
            assert run.success
            meta = run.asset_materializations_for_node("cache_warmup")[0].metadata
            expected = len(catalogue(demo_db)) * 2
            assert meta["redis_warmed"].value == meta["redis_requested"].value == expected
            assert meta["redis_failed"].value == 0 and "no CDN" in meta["http"].value
            client = srv.client()
            assert len(list(client.scan_iter(match="rel:avail:*"))) == expected
            slug, sid = catalogue(demo_db)[0]
            day = json.loads(client.get(next(client.scan_iter(match=f"rel:avail:{slug}:{sid}:*"))))["date"]
            assert client.exists(availability_key("rel:", slug, sid, day))
            # a release that does not serve its tag fails validation: no warm-up follows
            git(repo, "tag", "v2.1.0")
            (bad,) = tick(defs, instance, first.cursor).run_requests[-1:]
            assert not defs.resolve_job_def("deploy_validation_job").execute_in_process(
                partition_key=bad.partition_key, instance=instance, raise_on_error=False).success
            after_fail = warm_sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=after_pass.cursor))
            assert after_fail.run_requests == []


def test_without_the_redis_url_the_warm_up_fails_and_says_which_variable(tmp_path, demo_db, repo, write_config,
                                                                         monkeypatch):
    monkeypatch.delenv("OPS_TEST_CACHE_URL", raising=False)
    defs = build_definitions(_cfg(write_config, tmp_path, demo_db, repo, "http://127.0.0.1:9"))
    with DagsterInstance.ephemeral() as instance:
        run = defs.resolve_job_def("cache_warmup_job").execute_in_process(instance=instance, raise_on_error=False)
    assert not run.success
    failure = next(e for e in run.all_events if e.event_type_value == "STEP_FAILURE")
    assert "OPS_TEST_CACHE_URL" in failure.event_specific_data.user_failure_data.description
