"""The stream a backup's bytes go through: plaintext → sha256 → zstd → [age] → sha256 → store.

One pass, fixed-size chunks, no intermediate file of the compressed data: memory stays bounded
whatever the size of the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

import pyrage
import zstandard

from ops_project.common.streams import CHUNK, HashingReader, HashingWriter, copy
from ops_project.storage import ObjectWriter


@dataclass(frozen=True)
class StreamResult:
    plaintext_size: int
    plaintext_sha256: str
    stored_size: int
    stored_sha256: str


def encode(source: BinaryIO, sink: ObjectWriter, *, level: int, threads: int,
           recipients: list | None = None) -> StreamResult:
    """Compress (and encrypt) everything ``source`` yields into ``sink``; the caller commits."""
    plain = HashingReader(source)
    stored = HashingWriter(sink)
    cctx = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
    with cctx.stream_reader(plain, read_size=CHUNK, closefd=False) as compressed:
        if recipients:
            pyrage.encrypt_io(compressed, stored, recipients)
        else:
            copy(compressed, stored)
    return StreamResult(plain.size, plain.hexdigest, stored.size, stored.hexdigest)
