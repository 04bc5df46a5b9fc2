"""Runs launched by hand get the scheduled runs' ``ops/*`` tags; the shipped instance settings load them."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetKey, DagsterInstance
from dagster._core.instance.ref import InstanceRef

from jobs.coordinator import OpsRunCoordinator, ops_tags

REPO = Path(__file__).resolve().parents[2]


def test_a_hand_launched_run_gets_the_tags_of_its_heaviest_work():
    restore = ops_tags([AssetKey("restore_verification")], {"dagster/partition/database": "booking",
                                                             "dagster/partition/window": "2026-11-22-04:00"})
    assert restore == {"ops/kind": "restore", "ops/database": "booking"}
    everything = ops_tags([AssetKey("verified_rpo"), AssetKey(["backup_replica", "eu-west-1"]),
                           AssetKey("database_backup"), AssetKey("restore_verification")],
                          {"dagster/partition/database": "core"})
    assert everything == {"ops/kind": "backup", "ops/database": "core", "dagster/priority": "10"}
    assert ops_tags([AssetKey("dr_drill")], {}) == {"ops/kind": "drill"}
    # never overrides what a schedule or a person set
    assert ops_tags([AssetKey("database_backup")], {"ops/kind": "backup", "dagster/priority": "5",
                                                    "ops/database": "x", "dagster/partition/database": "x"}) == {}
    assert ops_tags(None, {}) == {}


def test_a_run_of_one_database_carries_the_batch_that_backs_it_up():
    from ops_project.backups.batch import batch_of

    names = [f"t{i}" for i in range(5)]
    assert [batch_of(names, 2, n) for n in names] == ["t0..t1", "t0..t1", "t2..t3", "t2..t3", None]  # t4 alone
    assert batch_of(names, 2, "unknown") is None
    tags = ops_tags([AssetKey("restore_verification")], {"dagster/partition/database": "t3"},
                    lambda db: batch_of(names, 2, db))
    assert tags == {"ops/kind": "restore", "ops/database": "t3", "ops/batch": "t2..t3"}
    assert "ops/batch" not in ops_tags([AssetKey("database_backup")], {"dagster/partition/database": "t4"},
                                       lambda db: batch_of(names, 2, db))


def test_the_shipped_instance_uses_the_coordinator_with_its_limits(tmp_path):
    (tmp_path / "dagster.yaml").write_text((REPO / "deploy" / "dagster.local.yaml").read_text())
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path))) as instance:
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, OpsRunCoordinator)
        limits = coordinator.get_run_queue_config().tag_concurrency_limits
        assert {"key": "ops/database", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        assert {"key": "ops/batch", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        assert {"key": "ops/kind", "value": "restore", "limit": 1} in limits
