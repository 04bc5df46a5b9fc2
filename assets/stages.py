"""What the backup pipeline's stages share: one database-window (``Item``), one run (``Scope``), one outcome
(``Stage``).

A stage is a plain function ``(scope, item, ...) -> Stage`` that returns the Dagster events it wants recorded
for its item's partition; it never yields, so stages can run on worker threads while the pipeline's own
thread records their events (``assets.pipeline``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from dagster import AssetKey, AssetMaterialization, MultiPartitionKey, TimeWindowPartitionsDefinition
from dagster._core.definitions.partitions.utils import get_tags_from_multi_partition_key

from ops_project.config import OpsConfig
from ops_project.storage import ObjectStore


@dataclass(frozen=True)
class Item:
    """One database in one backup window: one partition of every backup asset."""

    key: MultiPartitionKey

    @property
    def database(self) -> str:
        return self.key.keys_by_dimension["database"]

    @property
    def window(self) -> str:
        return self.key.keys_by_dimension["window"]

    def materialization(self, asset_key: AssetKey, metadata: dict) -> AssetMaterialization:
        # the dimension tags are what Dagster puts on an output's materialization of a multi-partition
        return AssetMaterialization(asset_key=asset_key, partition=str(self.key), metadata=metadata,
                                    tags=get_tags_from_multi_partition_key(self.key))


@dataclass
class Stage:
    """A stage's outcome for one item: the events to record and whether the later stages should run."""

    events: list = field(default_factory=list)
    failure: BaseException | None = None  # the item failed here (its events are still recorded)
    stop: bool = False  # nothing more to do for this item (skipped: the partition stays missing)
    backup_id: str | None = None  # the backup this stage produced or copied, for the next stage

    @classmethod
    def done(cls, event, *, backup_id: str | None = None) -> Stage:
        return cls([event], backup_id=backup_id)

    @classmethod
    def skipped(cls, event) -> Stage:
        return cls([event], stop=True)

    @classmethod
    def failed(cls, events: list, failure: BaseException) -> Stage:
        return cls(list(events), failure=failure, stop=True)


@dataclass
class Scope:
    """Everything the stages of one run share, resolved once on the run's thread (resources, stores, keys)."""

    cfg: OpsConfig
    windows: TimeWindowPartitionsDefinition
    stores: dict[str, ObjectStore]
    databases: object  # resources.DatabasesResource
    recipients: list | None
    identities: list | None
    requested_at: datetime | None
    log: Callable[[str], None]  # the run's log: info ...
    warn: Callable[[str], None]  # ... and warning

    def store(self, region: str) -> ObjectStore:
        return self.stores[region]
