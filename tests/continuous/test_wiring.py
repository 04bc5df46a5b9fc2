"""Continuous protection through Dagster's own APIs, with Litestream running for real: the sensor writes markers
and runs continuous_rpo_job when a replica stalls or recovers; its current_rpo check fails while replication is
stopped and passes again once it resumes; the point-in-time restore test passes and feeds the verified RPO."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import UTC, datetime

import pytest
from dagster import build_sensor_context

from assets.continuous import CURRENT_RPO_CHECK, PITR_CHECK
from ops_project.backups.drills import DrillContext, run_drill
from ops_project.clients import Clients
from ops_project.config import load_config
from ops_project.continuous.markers import read_markers, write_marker
from ops_project.continuous.record import verified_to
from ops_project.definitions import build_definitions
from tests.conftest import local_region
from tests.continuous.conftest import check_evaluation


@pytest.fixture
def protected(tmp_path, demo_db_template, write_config):
    live = tmp_path / "live" / "booking.db"
    live.parent.mkdir()
    shutil.copy(demo_db_template, live)
    config = write_config([{"name": "booking", "engine": "sqlite", "path": str(live)}],
                          [local_region(tmp_path, "af-south-1"), local_region(tmp_path, "eu-west-1")],
                          objectives={"rpo_minutes": 15, "rto_minutes": 60},
                          continuous={"marker_seconds": 5, "stall_seconds": 8})
    cfg = load_config(config)
    return config, cfg, build_definitions(cfg), live


def _tick(defs, instance, cursor=None):
    sensor = defs.resolve_sensor_def("continuous_replication_sensor")
    return sensor.evaluate_tick(build_sensor_context(instance=instance, definitions=defs, cursor=cursor))


def test_the_current_rpo_check_fails_while_replication_is_stopped_and_recovers(protected, litestream,
                                                                               home_instance):
    config, cfg, defs, live = protected
    job = defs.resolve_job_def("continuous_rpo_job")
    with litestream(config) as ls:
        ls.wait_replicated()
        first = _tick(defs, home_instance)
        assert len(first.run_requests) == 1  # the first look records the state with a run
        assert len(read_markers(live)) >= 2  # the sensor's marker, beside the one `continuous run` wrote
        ok = job.execute_in_process(instance=home_instance)
        assert ok.success and check_evaluation(ok, CURRENT_RPO_CHECK).passed
        ls.stop()  # replication stops; the application (here: the sensor's markers) keeps writing
        time.sleep(9)
        changed = _tick(defs, home_instance, first.cursor)
        assert len(changed.run_requests) == 1  # the state changed: a run, whose check says what
        bad = job.execute_in_process(instance=home_instance, raise_on_error=False)
        assert not bad.success
        check = check_evaluation(bad, CURRENT_RPO_CHECK)
        assert not check.passed and "booking in af-south-1: the replica last advanced" in check.description
        assert "Litestream has stopped" in check.description
        with pytest.raises(Exception, match="continuous replication: .*last advanced"):
            _tick(defs, home_instance, changed.cursor)  # still stalled, nothing new: the tick reads red
        ls.start()
        ls.wait_replicated()
        back = _tick(defs, home_instance, changed.cursor)
        assert len(back.run_requests) == 1
        again = job.execute_in_process(instance=home_instance)
        assert again.success and check_evaluation(again, CURRENT_RPO_CHECK).passed  # the alert sensor says "resolved"


def test_with_no_litestream_at_all_the_check_fails_and_says_what_to_start(protected, home_instance):
    config, cfg, defs, live = protected
    result = defs.resolve_job_def("continuous_rpo_job").execute_in_process(instance=home_instance,
                                                                            raise_on_error=False)
    check = check_evaluation(result, CURRENT_RPO_CHECK)
    assert not result.success and not check.passed
    assert "no continuous replica yet: is Litestream running?" in check.description


def test_the_point_in_time_restore_test_passes_and_the_verified_rpo_counts_it(protected, litestream,
                                                                             home_instance):
    config, cfg, defs, live = protected
    stop = threading.Event()

    def mark():
        while not stop.is_set():
            write_marker(live, datetime.now(UTC), keep_hours=100)
            time.sleep(1)

    with litestream(config) as ls:
        ls.wait_replicated()
        marker = threading.Thread(target=mark)
        marker.start()
        try:
            time.sleep(16)  # long enough that a moment between the first snapshot and now can be proven
            result = defs.resolve_job_def("point_in_time_restore_job").execute_in_process(instance=home_instance)
            assert result.success
            check = check_evaluation(result, PITR_CHECK)
            assert check.passed, check.description
            (mat,) = result.asset_materializations_for_node("point_in_time_restore")
            assert "booking_achieved_rpo_seconds" in mat.metadata  # a moment was tested, not only the newest
            assert mat.metadata["booking_achieved_rpo_seconds"].value <= 5 + 3
            stores = [Clients(cfg).store(r) for r in cfg.regions]
            proven = verified_to(stores, ["booking"])["booking"]
            assert (datetime.now(UTC) - proven).total_seconds() < 60
            # no snapshot backup was ever verified: without the point in time this database breaches its RPO
            rpo = defs.resolve_job_def("verified_rpo_job").execute_in_process(instance=home_instance)
            assert rpo.success and check_evaluation(rpo, "rpo").passed
            (rmat,) = rpo.asset_materializations_for_node("verified_rpo")
            assert rmat.metadata["booking_point_in_time_age_minutes"].value < 1
            assert rmat.metadata["booking_verified_backup_id"].value == "none verified yet"
            # the DR drill's point_in_time scenario: the live database lost now, restored from a surviving region
            assert cfg.drill_scenarios[-1] == "point_in_time"
            report = run_drill(DrillContext(cfg, {r.name: Clients(cfg).store(r) for r in cfg.secondaries}), "w",
                               ["point_in_time"])
            (drilled,) = report.results
            assert drilled.passed, drilled.notes
            assert drilled.region == "eu-west-1" and 0 <= drilled.rpo_minutes < 1  # minutes, not hours
            assert any("list a tenant's services" in n for n in drilled.notes)  # the application's queries ran
        finally:
            stop.set()
            marker.join()
