"""The stream toolkit: one chunk size, readers and writers that count, hash and time what passes.

Every byte path in the project (backup encode, replication copy, restore fetch, drills' copies,
pg_dump's output) goes through these instead of wrappers of its own, so memory stays bounded by
a few ``CHUNK``s and every size and sha256 is computed the same way.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Protocol

import zstandard

from ops_project.common.errors import IntegrityError

CHUNK = 1 << 20
Progress = Callable[[int, int], None]  # (bytes so far, bytes expected; 0 when unknown)


class Readable(Protocol):
    def read(self, n: int = -1) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes) -> int: ...


class CountingReader:
    """Reads from ``source`` and counts the bytes and the seconds spent waiting for them.

    ``read()`` without a size returns at most ``CHUNK`` bytes, never the whole stream: memory stays
    bounded, and callers read until ``b""`` as with any stream. ``progress`` (optional) is called
    after each read with (bytes so far, ``total``).
    """

    def __init__(self, source: Readable, *, progress: Progress | None = None, total: int = 0):
        self._source, self._progress, self._total = source, progress, total
        self.size = 0
        self.seconds = 0.0

    def _seen(self, data: bytes) -> None:
        pass

    def read(self, n: int = -1) -> bytes:
        t = time.perf_counter()
        data = self._source.read(CHUNK if n is None or n < 0 else n)
        self.seconds += time.perf_counter() - t
        self._seen(data)
        self.size += len(data)
        if self._progress:
            self._progress(self.size, self._total)
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


class HashingReader(CountingReader):
    """A ``CountingReader`` that also computes the sha256 of what it read."""

    def __init__(self, source: Readable, **kw):
        super().__init__(source, **kw)
        self.sha = hashlib.sha256()

    def _seen(self, data: bytes) -> None:
        self.sha.update(data)

    @property
    def hexdigest(self) -> str:
        return self.sha.hexdigest()


class HashingWriter:
    """Hashes and counts what is written, then passes it on to ``sink``."""

    def __init__(self, sink: Writable):
        self._sink = sink
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        data = bytes(data)
        self.sha.update(data)
        self.size += len(data)
        self._sink.write(data)
        return len(data)

    def flush(self) -> None:
        """Passed on to a sink that has one (a file); object-store writers have none and buffer parts."""
        flush = getattr(self._sink, "flush", None)
        if flush:
            flush()

    @property
    def hexdigest(self) -> str:
        return self.sha.hexdigest()


def copy(source: Readable, sink: Writable) -> int:
    """Everything ``source`` yields into ``sink``, a chunk at a time; the number of bytes copied."""
    size = 0
    while chunk := source.read(CHUNK):
        sink.write(chunk)
        size += len(chunk)
    return size


def drain(source: Readable) -> int:
    """Read ``source`` to its end (so that a hashing reader sees every byte); bytes read."""
    size = 0
    while chunk := source.read(CHUNK):
        size += len(chunk)
    return size


def sha256_of(source: Readable) -> tuple[str, int]:
    """(sha256 hex, size) of everything ``source`` yields."""
    reader = HashingReader(source)
    drain(reader)
    return reader.hexdigest, reader.size


class _Counting:
    def __init__(self, sink: Writable):
        self._sink, self.size = sink, 0

    def write(self, data) -> int:
        self.size += len(data)
        return self._sink.write(data)


def decompress_frame(source: Readable, sink: Writable, *, what: str, expected_size: int | None = None) -> int:
    """zstd data from ``source`` into ``sink`` with bounded memory: the output goes out ``CHUNK`` by ``CHUNK``
    whatever the data (a frame of zeros expands thousands of times; it must never land in memory whole).

    Returns the bytes written. Output shorter than ``expected_size`` (a frame that stops early) is an
    ``IntegrityError`` naming ``what``, never a short file.
    """
    out = _Counting(sink)
    with zstandard.ZstdDecompressor().stream_writer(out, write_size=CHUNK, closefd=False) as writer:
        while chunk := source.read(CHUNK):
            writer.write(chunk)
    if expected_size is not None and out.size < expected_size:
        raise IntegrityError(f"{what}: the zstd stream ends before its frame does ({out.size} of {expected_size} "
                             f"bytes): the stored object is truncated; use another backup or region")
    return out.size


