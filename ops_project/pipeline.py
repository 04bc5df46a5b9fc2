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

from ops_project.errors import EncryptionError, IntegrityError
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


class _PlainSink:
    def __init__(self, out: BinaryIO):
        self._out = out
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        data = bytes(data)
        self.sha.update(data)
        self.size += len(data)
        self._out.write(data)
        return len(data)

    def flush(self) -> None:
        pass


def decode(stored: BinaryIO, out: BinaryIO, *, identities: list | None = None,
           expect_stored_sha256: str | None = None, name: str = "object") -> StreamResult:
    """The reverse of ``encode``: checks the stored sha256 as it reads and returns both hashes."""
    reader = _HashingReader(stored)
    plain = _PlainSink(out)
    dctx = zstandard.ZstdDecompressor()
    try:
        if identities:
            import io
            import os
            import threading

            r_fd, w_fd = os.pipe()
            errors: list[BaseException] = []

            def decrypt() -> None:
                try:
                    with open(w_fd, "wb") as w:
                        pyrage.decrypt_io(reader, w, identities)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    errors.append(exc)

            thread = threading.Thread(target=decrypt, daemon=True)
            thread.start()
            with open(r_fd, "rb") as r:
                dctx.copy_stream(io.BufferedReader(r), plain, read_size=CHUNK, write_size=CHUNK)
            thread.join()
            if errors:
                raise errors[0]
        else:
            dctx.copy_stream(reader, plain, read_size=CHUNK, write_size=CHUNK)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{name}: not a valid zstd stream ({exc}); the stored object is corrupt") from None
    except pyrage.DecryptError as exc:
        raise IntegrityError(f"{name}: age decryption failed ({exc}); wrong identity or corrupt object") from None
    while reader.read(CHUNK):
        pass
    result = StreamResult(plain.size, plain.sha.hexdigest(), reader.size, reader.sha.hexdigest())
    if expect_stored_sha256 and result.stored_sha256 != expect_stored_sha256:
        raise IntegrityError(f"{name}: sha256 of stored bytes is {result.stored_sha256}, "
                             f"manifest says {expect_stored_sha256}: the object is corrupt")
    return result
