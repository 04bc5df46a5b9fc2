"""The stream a backup's bytes go through: plaintext → sha256 → zstd → [age] → sha256 → store.

One pass, fixed-size chunks, no intermediate file of the compressed data: memory stays bounded
whatever the size of the database.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import BinaryIO

import pyrage
import zstandard

from ops_project.errors import EncryptionError
from ops_project.storage import ObjectWriter

CHUNK = 1 << 20


@dataclass(frozen=True)
class StreamResult:
    plaintext_size: int
    plaintext_sha256: str
    stored_size: int
    stored_sha256: str


class _HashingReader:
    """Reads from ``source`` and hashes what passes through (the plaintext side)."""

    def __init__(self, source: BinaryIO):
        self._source = source
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._source.read(CHUNK if n is None or n < 0 else n)
        self.sha.update(data)
        self.size += len(data)
        return data


class _HashingWriter:
    """Hashes and counts what is written, then passes it on (the stored side)."""

    def __init__(self, sink: ObjectWriter):
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
        pass


def parse_recipients(text: str, *, source: str) -> list:
    """Parse age recipients (one per line or comma-separated, ``#`` comments allowed)."""
    items = [part.strip() for line in text.splitlines() for part in line.split("#", 1)[0].split(",")]
    items = [item for item in items if item]
    if not items:
        raise EncryptionError(f"{source} holds no age recipient: give at least one public key (age1...)")
    recipients = []
    for item in items:
        try:
            recipients.append(pyrage.x25519.Recipient.from_str(item))
        except Exception:
            shown = item[:12] + "…" if len(item) > 12 else item
            raise EncryptionError(f"{source}: {shown!r} is not an age X25519 recipient (age1...)") from None
    return recipients


def recipient_fingerprint(recipient) -> str:
    return hashlib.sha256(str(recipient).encode()).hexdigest()[:16]


def encode(source: BinaryIO, sink: ObjectWriter, *, level: int, threads: int,
           recipients: list | None = None) -> StreamResult:
    """Compress (and encrypt) everything ``source`` yields into ``sink``; the caller commits."""
    plain = _HashingReader(source)
    stored = _HashingWriter(sink)
    cctx = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
    with cctx.stream_reader(plain, read_size=CHUNK, closefd=False) as compressed:
        if recipients:
            pyrage.encrypt_io(compressed, stored, recipients)
        else:
            while chunk := compressed.read(CHUNK):
                stored.write(chunk)
    return StreamResult(plain.size, plain.sha.hexdigest(), stored.size, stored.sha.hexdigest())
