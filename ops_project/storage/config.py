"""The ``regions`` section: where backups live. The first region is primary; the others hold replicas."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ops_project.common.config import NAME_RE, Strict


class RegionConfig(Strict):
    name: str = Field(pattern=NAME_RE)
    kind: Literal["local", "s3"]
    path: Path | None = None
    create: bool = False  # local: create the directory if it is missing (never for a mount point)
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    endpoint_url_env: str | None = None
    region_name: str | None = None
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> RegionConfig:
        if self.kind == "local" and self.path is None:
            raise ValueError("a local region needs 'path'")
        if self.kind == "s3":
            if not self.bucket:
                raise ValueError("an s3 region needs 'bucket'")
            if bool(self.access_key_id_env) != bool(self.secret_access_key_env):
                raise ValueError("give both access_key_id_env and secret_access_key_env, or neither")
        return self

    def secret_variables(self) -> list[str | None]:
        return [self.endpoint_url_env, self.access_key_id_env, self.secret_access_key_env]


def _nested(a: str, b: str) -> bool:
    a, b = a.strip("/"), b.strip("/")
    return a == b or not a or not b or a.startswith(b + "/") or b.startswith(a + "/")


def regions_overlap(a: RegionConfig, b: RegionConfig) -> bool:
    """Whether two regions share (or nest) a location: the same directory, or the same bucket and endpoint."""
    if a.kind != b.kind:
        return False
    if a.kind == "local":
        pa, pb = Path(a.path).expanduser().resolve(), Path(b.path).expanduser().resolve()
        return pa == pb or pa in pb.parents or pb in pa.parents
    same_endpoint = (a.endpoint_url_env, a.endpoint_url, a.region_name) == \
        (b.endpoint_url_env, b.endpoint_url, b.region_name)
    return same_endpoint and a.bucket == b.bucket and _nested(a.prefix, b.prefix)
