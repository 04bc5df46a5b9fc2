"""Where backups live in a region (README.md, "Restoring by hand"; the object layout other tools rely on).

    backups/<database>/<backup_id>/data.<ext>      the stored bytes
    backups/<database>/<backup_id>/manifest.json   written last: its presence makes the backup complete
    backups/<database>/<backup_id>/verification.json   the last restore verification's verdict
"""

from __future__ import annotations

from datetime import UTC, datetime

MANIFEST = "manifest.json"
RESERVATION = "reserved"  # written first (create-if-absent) so that two takers never share an id; removed last
VERIFICATION = "verification.json"  # written by restore verification; the newest verified backup is protected
ID_FORMAT = "%Y%m%dT%H%M%SZ"


def data_name(engine: str, encrypted: bool) -> str:
    """The data object's name inside its backup folder (one of ``DATA_NAMES``)."""
    base = "data.sqlite.zst" if engine == "sqlite" else "data.pgdump.zst"
    return base + (".age" if encrypted else "")


DATA_NAMES = frozenset(data_name(engine, encrypted) for engine in ("sqlite", "postgres") for encrypted in (False, True))


def backup_prefix(database: str, backup_id: str) -> str:
    return f"backups/{database}/{backup_id}/"


def database_prefix(database: str) -> str:
    return f"backups/{database}/"


def new_backup_id(at: datetime, taken: set[str] = frozenset()) -> str:
    """The UTC snapshot time, plus a short suffix when that second is already used."""
    base = at.astimezone(UTC).strftime(ID_FORMAT)
    if base not in taken:
        return base
    n = 1
    while f"{base}-{n}" in taken:
        n += 1
    return f"{base}-{n}"


def backup_time(backup_id: str) -> datetime:
    return datetime.strptime(backup_id.split("-", 1)[0], ID_FORMAT).replace(tzinfo=UTC)


def parse_key(key: str) -> tuple[str, str, str] | None:
    """(database, backup_id, file name) for a key under backups/, else None."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "backups":
        return None
    return parts[1], parts[2], parts[3]
