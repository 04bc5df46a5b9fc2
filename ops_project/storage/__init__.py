"""Object storage: one contract, one implementation per backend (like Litestream's ``ReplicaClient``).

Backends: ``local`` (a directory: the embedded default, NFS mounts, a second disk) and ``s3`` (any
S3-compatible endpoint). Both pass the same contract suite (``tests/contract/``) with no branch on
the backend. The rules every method below follows:

- Keys are ``/``-separated and relative to the region's root (a local directory, or a bucket plus
  an optional prefix). A key never escapes the root.
- Writes are all-or-nothing: an object becomes visible (``exists``, ``list``, ``reader``) only when
  its writer commits. A writer that is aborted leaves nothing; a writer interrupted by a crash or a
  killed server leaves no object, only an *unfinished upload* that ``unfinished_uploads`` reports and
  ``abort_upload`` removes (retention does so once it is older than a day).
- Every failure raises ``StorageError`` (or a subclass) whose message names the region, the object
  and what to do: ``BucketMissingError``, ``CredentialsError`` (naming the variables, never their
  values), ``ObjectMissingError``. Transient errors are retried inside the backend first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from ops_project.common.errors import ConfigError
from ops_project.storage.config import RegionConfig


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: float  # unix seconds


@dataclass(frozen=True)
class UnfinishedUpload:
    """A write that was started and neither committed nor aborted (a crash, a killed server)."""

    key: str  # the key the object would have had
    upload_id: str  # the backend's handle for it (an S3 upload id; a local temporary file's name)
    last_activity: float  # unix seconds of its last sign of life: started, or the newest part written


class ObjectWriter(Protocol):
    def write(self, data: bytes) -> int:
        """Append ``data``; memory stays bounded (a few parts). Raises StorageError if the backend fails."""

    def commit(self) -> int:
        """Make the object visible under its key, replacing any older one; returns its size in bytes.

        After a failed commit nothing new is visible (an earlier object under the key may remain).
        """

    def abort(self) -> None:
        """Discard everything written; never raises for a backend that is already gone."""


class ObjectStore(Protocol):
    region: str  # the configured region name, used in every message

    def describe(self, key: str = "") -> str:
        """Where ``key`` lives, for people: a path, or ``s3://bucket/prefix/key``. Never holds a secret."""

    def check(self) -> None:
        """Fail early (StorageError) when the region cannot be used: missing bucket, bad credentials, no server."""

    def writer(self, key: str, size_hint: int | None = None) -> ObjectWriter:
        """A streaming writer for ``key``; ``size_hint`` is an upper bound of the size (part sizing)."""

    def reader(self, key: str) -> BinaryIO:
        """A streaming reader (context manager) of a committed object; ObjectMissingError if there is none.

        Errors while reading surface as StorageError from ``read``.
        """

    def put_bytes(self, key: str, data: bytes) -> None:
        """Write a small object in one call, all-or-nothing."""

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Create a small object only if nothing is at ``key``; False (nothing written) if something is.
        Atomic across processes and machines: of two racing callers exactly one gets True."""

    def get_bytes(self, key: str) -> bytes:
        """Read a small object whole; ObjectMissingError if there is none."""

    def exists(self, key: str) -> bool:
        """Whether a committed object is under ``key`` (unfinished writes do not count)."""

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Committed objects whose key starts with ``prefix``, in key order. Unfinished writes are not listed."""

    def delete(self, key: str) -> None:
        """Remove ``key``; deleting a key that does not exist is not an error."""

    def unfinished_uploads(self, prefix: str = "") -> list[UnfinishedUpload]:
        """Writes under ``prefix`` that are not committed: interrupted ones (what a crash left behind) and ones
        still running, told apart by ``last_activity`` (a running write keeps it fresh); stalest first."""

    def abort_upload(self, upload: UnfinishedUpload) -> None:
        """Remove an interrupted write; one that is already gone is not an error."""


@dataclass(frozen=True)
class S3Credentials:
    """Resolved values (``ops_project.clients`` reads them from the variables the configuration names)."""

    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None


def open_store(region: RegionConfig, creds: S3Credentials | None = None, *, part_size: int = 8 << 20) -> ObjectStore:
    """The store for a configured region. ``creds``: resolved S3 credentials (``None``: the default AWS chain)."""
    if region.kind == "local":
        from ops_project.storage.local import LocalStore

        return LocalStore(region.name, region.path, create=region.create)
    from ops_project.storage.s3 import S3Store

    if creds is None and any(region.secret_variables()):
        raise ConfigError(f"region {region.name} names environment variables for its endpoint or credentials: "
                          f"open it through ops_project.clients.Clients, which resolves them")
    return S3Store(region, creds or S3Credentials(region.endpoint_url), part_size=part_size)
