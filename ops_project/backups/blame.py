"""Whose fault is a failed restore: the backup's (a conclusive failure) or our environment's (inconclusive)?

The outcome is derived from the exception's class, in one place. The backup is at fault when its stored
bytes do not match the manifest, when they match and still do not decode, when its data object is gone
while its manifest stands, and when the restored copy is not a sound database. Everything else (a region
that cannot be reached, a full scratch disk, a missing or wrong key, a missing tool, a scratch server
that refuses) says nothing about the backup.
"""

from __future__ import annotations

import sqlite3

from ops_project.common.checks import Outcome
from ops_project.common.errors import IntegrityError, ObjectMissingError

# SQLite errors that describe the file, not the machine reading it ("disk I/O error", "database is locked",
# "unable to open database file" describe the machine).
_SQLITE_CORRUPTION = ("malformed", "not a database", "corrupt", "file is encrypted")


def blame(exc: BaseException) -> Outcome:
    """FAILED when ``exc`` convicts the backup, INCONCLUSIVE when it is our environment's failure."""
    if isinstance(exc, IntegrityError | ObjectMissingError):
        return Outcome.FAILED
    if isinstance(exc, sqlite3.DatabaseError):
        if not isinstance(exc, sqlite3.OperationalError):
            return Outcome.FAILED
        return Outcome.FAILED if any(word in str(exc).lower() for word in _SQLITE_CORRUPTION) else \
            Outcome.INCONCLUSIVE
    return Outcome.INCONCLUSIVE
