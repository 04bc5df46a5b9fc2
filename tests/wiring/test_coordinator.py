"""Runs launched by hand get the scheduled runs' ``ops/*`` tags; the shipped instance settings load them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.dagster_run import DagsterRun
from dagster._utils.tags import TagConcurrencyLimitsCounter

from jobs.coordinator import OpsRunCoordinator, ops_tags

REPO = Path(__file__).resolve().parents[2]


def test_a_hand_launched_run_gets_the_tags_of_its_heaviest_work():
    restore = ops_tags([AssetKey("restore_verification")], {"dagster/partition/database": "booking",
                                                             "dagster/partition/window": "2026-11-22-04:00"})
    # a restore test reads copies, never the live database: limited on its own key, never per database, so that
    # a restore backfill never delays a backup of the same database
    assert restore == {"ops/kind": "restore"}
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
    tags = ops_tags([AssetKey("database_backup")], {"dagster/partition/database": "t3"},
                    lambda db: batch_of(names, 2, db))
    assert tags == {"ops/kind": "backup", "ops/database": "t3", "ops/batch": "t2..t3", "dagster/priority": "10"}
    assert "ops/batch" not in ops_tags([AssetKey("database_backup")], {"dagster/partition/database": "t4"},
                                       lambda db: batch_of(names, 2, db))


def test_a_backfill_range_run_is_limited_like_the_scheduled_batch_it_overlaps():
    from ops_project.backups.batch import batch_of

    names = [f"t{i}" for i in range(5)]

    def tags(keys, start, end):
        return ops_tags([AssetKey(k) for k in keys], {"dagster/asset_partition_range_start": start,
                                                      "dagster/asset_partition_range_end": end},
                        lambda db: batch_of(names, 2, db))

    # databases t2..t3 of one window: the scheduled batch t2..t3
    assert tags(["database_backup"], "t2|2026-11-22-04:00", "t3|2026-11-22-04:00") == {
        "ops/kind": "backup", "ops/batch": "t2..t3", "dagster/priority": "10"}
    # windows of one database: that database, and its batch
    assert tags(["database_backup", "restore_verification"], "t1|2026-11-20-04:00", "t1|2026-11-22-04:00") == {
        "ops/kind": "backup", "ops/database": "t1", "ops/batch": "t0..t1", "dagster/priority": "10"}
    # a restore backfill's range: its own key only
    assert tags(["restore_verification"], "t0|2026-11-20-04:00", "t3|2026-11-20-04:00") == {"ops/kind": "restore"}
    assert tags(["restore_verification"], "t0|2026-11-20-04:00", "t0|2026-11-22-04:00") == {"ops/kind": "restore"}


def test_the_shipped_instance_uses_the_coordinator_with_its_limits(tmp_path):
    (tmp_path / "dagster.yaml").write_text((REPO / "deploy" / "dagster.local.yaml").read_text())
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path))) as instance:
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, OpsRunCoordinator)
        limits = coordinator.get_run_queue_config().tag_concurrency_limits
        assert {"key": "ops/database", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        assert {"key": "ops/batch", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        assert {"key": "ops/kind", "value": "restore", "limit": 1} in limits


@pytest.mark.parametrize("instance_file", ["dagster.yaml", "dagster.local.yaml"])
def test_a_running_restore_test_never_holds_a_backup_of_its_database(instance_file):
    """Dagster's own queue rule (``TagConcurrencyLimitsCounter``, what the daemon dequeues by) on the shipped limits
    and the tags runs really get: a backup waits for a backup of its database, never for a restore test."""
    from ops_project.backups.batch import batch_of, label

    limits = yaml.safe_load((REPO / "deploy" / instance_file).read_text())["run_coordinator"]["config"][
        "tag_concurrency_limits"]
    names = ["tenant-a", "tenant-b", "tenant-c"]

    def run(keys: list[str], tags: dict[str, str]) -> DagsterRun:
        added = ops_tags([AssetKey(k) for k in keys], tags, lambda db: batch_of(names, 2, db))
        return DagsterRun(job_name="__ASSET_JOB", run_id=str(uuid.uuid4()), tags={**tags, **added})

    one = {"dagster/partition/database": "tenant-a", "dagster/partition/window": "2026-11-20-04:00"}
    restore = run(["restore_verification"], one)
    scheduled_batch = run(["database_backup", "restore_verification"],  # as backup_schedule asks for it
                          {"ops/kind": "backup", "dagster/priority": "10", "ops/batch": label(names[:2])})
    backup_alone = run(["database_backup"], one)

    beside_a_restore = TagConcurrencyLimitsCounter(limits, [restore])
    assert not beside_a_restore.is_blocked(scheduled_batch)
    assert not beside_a_restore.is_blocked(backup_alone)
    # one backup per database at a time: the batch holds its databases' own backups, and the other way round
    assert TagConcurrencyLimitsCounter(limits, [scheduled_batch]).is_blocked(backup_alone)
    assert TagConcurrencyLimitsCounter(limits, [backup_alone]).is_blocked(scheduled_batch)
    # restore tests are limited among themselves, on their own key
    restore_limit = next(lim["limit"] for lim in limits if lim["key"] == "ops/kind" and lim.get("value") == "restore")
    others = [run(["restore_verification"], {**one, "dagster/partition/database": n}) for n in names[:restore_limit]]
    assert TagConcurrencyLimitsCounter(limits, others).is_blocked(restore)


def test_a_whole_job_launched_by_hand_is_limited_like_its_kind():
    """A run of a whole job (the Launchpad, GraphQL, the CLI) has no asset selection: its kind is the job's own
    ``ops/kind`` tag, so a hand-launched backup_job of one database still waits for that database's batch."""
    from ops_project.backups.batch import batch_of

    names = [f"t{i}" for i in range(5)]
    tags = {"ops/kind": "backup", "dagster/partition/database": "t1", "dagster/partition/window": "2026-11-22-04:00"}
    assert ops_tags(None, tags, lambda db: batch_of(names, 2, db)) == {
        "ops/database": "t1", "ops/batch": "t0..t1", "dagster/priority": "10"}
    restore_job = {**tags, "ops/kind": "restore"}
    assert ops_tags(None, restore_job, lambda db: batch_of(names, 2, db)) == {}
