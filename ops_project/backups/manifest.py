"""The manifest: what a backup promises, and what restore verification compares against."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

FORMAT_VERSION = 1


@dataclass(frozen=True)
class TableStats:
    rows: int
    checksum: str  # order-independent content checksum, hex


@dataclass(frozen=True)
class Manifest:
    database: str
    engine: str
    backup_id: str
    partition_key: str | None
    snapshot_started_at: str
    snapshot_finished_at: str
    source_size_bytes: int
    stored_size_bytes: int
    sha256_stored: str
    sha256_plaintext: str
    data_object: str
    compression: dict
    encryption: dict | None
    schema_fingerprint: str
    tables: dict[str, TableStats]
    tool_versions: dict[str, str]
    checksum_method: str = ""
    window_start: str | None = None
    window_end: str | None = None
    invariants: dict[str, int] | None = None  # booking rules: live rows breaking each at snapshot time
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        raw = json.loads(data)
        if raw.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported manifest format_version {raw.get('format_version')!r}")
        raw["tables"] = {name: TableStats(**stats) for name, stats in raw["tables"].items()}
        return cls(**raw)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables.values())
