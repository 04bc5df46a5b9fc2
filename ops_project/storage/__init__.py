"""Object storage: one interface, one implementation per backend (like Litestream's replica clients).

Writes are all-or-nothing: an object becomes visible only when its writer commits, so a crash
or a killed server never leaves a half-written object under its final name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from ops_project.config import RegionConfig, secret


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: float  # unix seconds


@dataclass(frozen=True)
class UnfinishedUpload:
    """An upload that was started and never completed nor aborted (a crash, a killed server)."""

    key: str
    upload_id: str
    initiated: float  # unix seconds


class ObjectWriter(Protocol):
    def write(self, data: bytes) -> int: ...
    def commit(self) -> int: ...
    def abort(self) -> None: ...


class ObjectStore(Protocol):
    """What every backend offers. Keys are '/'-separated, relative to the region's root."""

    region: str

    def describe(self, key: str = "") -> str: ...
    def check(self) -> None: ...
    def writer(self, key: str, size_hint: int | None = None) -> ObjectWriter: ...
    def reader(self, key: str) -> BinaryIO: ...
    def put_bytes(self, key: str, data: bytes) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...
    def delete(self, key: str) -> None: ...
    def unfinished_uploads(self, prefix: str = "") -> list[UnfinishedUpload]: ...
    def abort_upload(self, upload: UnfinishedUpload) -> None: ...


@dataclass(frozen=True)
class S3Credentials:
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None


def credentials_from_env(region: RegionConfig, env: Mapping[str, str] | None = None) -> S3Credentials:
    """Resolve the variables a region names (the CLI path; Dagster resolves them through EnvVar)."""
    where = f"regions.{region.name}"
    return S3Credentials(
        endpoint_url=secret(region.endpoint_url_env, what=f"{where}.endpoint_url_env", env=env)
        or region.endpoint_url,
        access_key_id=secret(region.access_key_id_env, what=f"{where}.access_key_id_env", env=env),
        secret_access_key=secret(region.secret_access_key_env, what=f"{where}.secret_access_key_env", env=env),
    )


def open_store(region: RegionConfig, creds: S3Credentials | None = None, *, part_size: int = 8 << 20) -> ObjectStore:
    """The store for a configured region. ``creds`` default to the environment."""
    if region.kind == "local":
        from ops_project.storage.local import LocalStore

        return LocalStore(region.name, region.path)
    from ops_project.storage.s3 import S3Store

    creds = creds if creds is not None else credentials_from_env(region)
    return S3Store(region, creds, part_size=part_size)
