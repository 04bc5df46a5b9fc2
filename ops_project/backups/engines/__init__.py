"""Consistent online snapshots, one module per engine.

Each engine offers ``snapshot(...)``: a context manager that yields a ``Snapshot`` whose
``stream`` is the plaintext backup (a SQLite file, or ``pg_dump -Fc -Z0`` output) and whose
``stats()`` gives the schema fingerprint and per-table row counts and content checksums of
exactly the same point in time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from ops_project.backups.manifest import TableStats

MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class SnapshotStats:
    schema_fingerprint: str
    tables: dict[str, TableStats]
    invariants: dict[str, int] | None = None  # booking rules: rows breaking each, at this point in time
    checksum_settings: dict[str, str] | None = None  # session settings the checksums were computed under
    encoding: str | None = None  # PostgreSQL: the database's encoding


@dataclass
class Snapshot:
    stream: BinaryIO
    stats: Callable[[], SnapshotStats]
    source_size: Callable[[], int]
    tool_versions: dict[str, str] = field(default_factory=dict)
    checksum_method: str = ""
