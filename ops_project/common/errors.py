"""One exception family, with messages written for the person on call.

Every message says what went wrong, where (file, key, region, object) and what to do.
"""


class OpsError(Exception):
    """Base of every error ops_project raises on purpose. Its message never holds a secret: every value the
    factory resolved is scrubbed from it (``common.scrub``)."""

    def __init__(self, *args: object):
        from ops_project.common.scrub import scrub

        super().__init__(*(scrub(a) if isinstance(a, str) else a for a in args))


class ConfigError(OpsError):
    """The configuration file is missing, unreadable or invalid."""


class UnknownNameError(ConfigError):
    """A database or region name that the configuration does not have (bad usage on the command line)."""


class SecretMissingError(ConfigError):
    """An environment variable that the configuration names is not set."""


class StorageError(OpsError):
    """An object store could not be reached or refused an operation."""


class BucketMissingError(StorageError):
    pass


class CredentialsError(StorageError):
    pass


class ObjectMissingError(StorageError):
    pass


class BackupError(OpsError):
    """A backup could not be taken; nothing was marked complete."""


class WindowClosedError(BackupError):
    """A backup partition was requested outside the time it may be taken.

    ``skippable``: it was asked for after the window had closed (a stray UI or backfill attempt at an old
    window): nothing is lost by refusing it. Otherwise the run must fail: the window was asked for in time (a
    schedule tick) and still could not be taken (a backup is lost), or it has not ended yet.
    """

    def __init__(self, message: str, *, skippable: bool = False):
        super().__init__(message)
        self.skippable = skippable


class IntegrityError(OpsError):
    """The backup itself is at fault: stored bytes do not match what their manifest promises, or they do
    and are still not a sound database. Restore verification reads this as a conclusive failure."""


class CorruptDatabaseError(IntegrityError):
    """The restored copy (its bytes matching the manifest) is not a sound database."""


class ScratchServerError(OpsError):
    """The scratch server cannot restore or check a backup (missing extension, role, old version): ours."""


class EncryptionError(OpsError):
    """Encryption recipients or identities are missing or invalid."""
