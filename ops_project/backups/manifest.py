"""The manifest: what a backup promises, and what restore verification compares against."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

FORMAT_VERSION = 1


_FIELD_TYPES = {  # what from_json accepts per field (an int is never a bool, a str is never a number)
    "database": str, "engine": str, "backup_id": str, "partition_key": (str, type(None)),
    "snapshot_started_at": str, "snapshot_finished_at": str, "source_size_bytes": int, "stored_size_bytes": int,
    "sha256_stored": str, "sha256_plaintext": str, "data_object": str, "compression": dict,
    "encryption": (dict, type(None)), "schema_fingerprint": str, "tool_versions": dict, "checksum_method": str,
    "window_start": (str, type(None)), "window_end": (str, type(None)), "extra": dict,
    "checksum_settings": (dict, type(None)), "database_encoding": (str, type(None)),
}


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
    checksum_settings: dict[str, str] | None = None  # PostgreSQL: settings the row checksums were computed under
    database_encoding: str | None = None  # PostgreSQL: restores create the database in this encoding
    format_version: int = FORMAT_VERSION
    extra: dict = field(default_factory=dict)

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        """Parse and type-check a manifest; anything malformed is a ValueError naming the field."""
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        if raw.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported manifest format_version {raw.get('format_version')!r}")
        for name, kinds in _FIELD_TYPES.items():
            if name in raw and (not isinstance(raw[name], kinds) or isinstance(raw[name], bool)):
                raise ValueError(f"field {name!r} has the wrong type ({type(raw[name]).__name__})")
        tables = raw.get("tables")
        if not isinstance(tables, dict) or not all(
                isinstance(t, dict) and isinstance(t.get("rows"), int) and not isinstance(t.get("rows"), bool)
                and isinstance(t.get("checksum"), str) and set(t) == {"rows", "checksum"} for t in tables.values()):
            raise ValueError("field 'tables' must map each table to {rows: int, checksum: str}")
        counts = raw.get("invariants")
        if counts is not None and not (isinstance(counts, dict) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in counts.values())):
            raise ValueError("field 'invariants' must map rule names to counts")
        raw["tables"] = {name: TableStats(**stats) for name, stats in tables.items()}
        return cls(**raw)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables.values())
