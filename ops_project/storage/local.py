"""The ``local`` backend: a directory (the embedded default, an NFS mount, a second disk).

A write goes to ``.partial-<name>.<random>`` beside its final path and is renamed on commit, so an
object is all-or-nothing; a crash leaves the partial file, which is reported as an unfinished
upload (never listed as an object), as S3 reports an interrupted multipart upload.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ops_project.common.errors import ObjectMissingError, StorageError
from ops_project.storage import ObjectInfo, UnfinishedUpload

PARTIAL = ".partial-"


class _LocalWriter:
    def __init__(self, region: str, final: Path):
        self._region, self._final = region, final
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=PARTIAL + final.name + ".", dir=final.parent)
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        self._size = 0

    def _failed(self, action: str, exc: OSError) -> StorageError:
        self.abort()
        return StorageError(f"region {self._region}: {action} {self._final} failed: {exc.strerror or exc}; "
                            f"nothing was written (check the disk's free space and the path)")

    def write(self, data: bytes) -> int:
        try:
            self._file.write(data)
        except OSError as exc:
            raise self._failed("writing", exc) from None
        self._size += len(data)
        return len(data)

    def commit(self) -> int:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self._final)
        except OSError as exc:
            raise self._failed("committing", exc) from None
        return self._size

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)


class LocalStore:
    """``create``: make the region's directory when it is missing. Off by default: a region directory that
    is not there (an NFS share that did not mount) is an error, never a new folder on the local disk."""

    def __init__(self, region: str, root: Path | str, *, create: bool = False):
        self.region = region
        self.root = Path(root).expanduser().resolve()
        self.create = create

    def _ensure_root(self) -> None:
        if self.root.is_dir():
            return
        if not self.create:
            raise StorageError(f"region {self.region}: directory {self.root} does not exist: mount the volume or "
                               f"create the directory (or set create: true for a directory on this disk); it is "
                               f"never created silently")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"region {self.region}: cannot create directory {self.root}: {exc.strerror}") from None

    def __repr__(self) -> str:
        return f"LocalStore({self.region!r}, {str(self.root)!r})"

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise StorageError(f"region {self.region}: key {key!r} escapes the region root {self.root}")
        return path

    def describe(self, key: str = "") -> str:
        return str(self._path(key)) if key else str(self.root)

    def check(self) -> None:
        self._ensure_root()
        try:
            with tempfile.TemporaryFile(dir=self.root):
                pass
        except OSError as exc:
            raise StorageError(
                f"region {self.region}: directory {self.root} is not writable ({exc.strerror}); "
                "fix its 'path' in the configuration or the directory's permissions"
            ) from None

    def writer(self, key: str, size_hint: int | None = None) -> _LocalWriter:
        self._ensure_root()
        try:
            return _LocalWriter(self.region, self._path(key))
        except OSError as exc:
            raise StorageError(f"region {self.region}: cannot write {self._path(key)}: {exc.strerror}") from None

    def reader(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")  # noqa: SIM115 - the caller closes it
        except FileNotFoundError:
            raise ObjectMissingError(f"region {self.region}: object {self._path(key)} does not exist") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        writer = self.writer(key)
        try:
            writer.write(data)
            writer.commit()
        except BaseException:
            writer.abort()
            raise

    def put_if_absent(self, key: str, data: bytes) -> bool:
        self._ensure_root()
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise StorageError(f"region {self.region}: creating {path} failed: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise StorageError(f"region {self.region}: writing {path} failed: {exc.strerror or exc}") from None
        return True

    def get_bytes(self, key: str) -> bytes:
        with self.reader(key) as fh:
            return fh.read()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _walk(self, prefix: str) -> Iterator[tuple[str, Path]]:
        """(key, path) of every file under ``prefix``, in key order, partial writes included."""
        if not self.root.is_dir() and not self.create:
            self._ensure_root()  # a missing region is an error, not an empty one
        base = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        if not base.is_dir():
            return
        found = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append((key, full))
        yield from sorted(found)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        for key, full in self._walk(prefix):
            if not full.name.startswith(PARTIAL):
                st = full.stat()
                yield ObjectInfo(key, st.st_size, st.st_mtime)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # Remove directories left empty, up to the root.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()  # only if empty: a file written meanwhile keeps its directory
            except OSError:
                break
            parent = parent.parent

    def unfinished_uploads(self, prefix: str = "") -> list[UnfinishedUpload]:
        found = []
        for key, full in self._walk(prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""):
            if full.name.startswith(PARTIAL):
                final = full.name[len(PARTIAL):].rsplit(".", 1)[0]
                final_key = key.rsplit("/", 1)[0] + "/" + final if "/" in key else final
                if final_key.startswith(prefix):
                    try:
                        found.append(UnfinishedUpload(final_key, key, full.stat().st_mtime))
                    except FileNotFoundError:  # committed or aborted meanwhile
                        continue
        return sorted(found, key=lambda u: u.last_activity)

    def abort_upload(self, upload: UnfinishedUpload) -> None:
        if not upload.upload_id.rsplit("/", 1)[-1].startswith(PARTIAL):
            raise StorageError(f"region {self.region}: {upload.upload_id!r} is not an unfinished local write")
        self.delete(upload.upload_id)
