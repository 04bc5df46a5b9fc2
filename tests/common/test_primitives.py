"""The shared primitives: the check/verdict type and its markdown, tables, names, and the stream toolkit."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
import zstandard

from ops_project.common.checks import Check, all_passed, render
from ops_project.common.errors import IntegrityError
from ops_project.common.markdown import table
from ops_project.common.names import identifier
from ops_project.common.streams import (
    CHUNK,
    CountingReader,
    HashingReader,
    HashingWriter,
    copy,
    decompress_frame,
    sha256_of,
)


def test_verdict_follows_blocking_checks_only():
    checks = [Check("a", True, "fine"), Check("b", False, "slow | very", blocking=False)]
    assert all_passed(checks)
    assert not all_passed([*checks, Check("c", False, "broken")])
    md = render("Verdict: PASSED", checks, before=["From `here`."], after=["Done."])
    assert md.splitlines() == ["### Verdict: PASSED", "", "From `here`.", "", "| check | result | detail |",
                               "|---|---|---|", "| a | pass | fine |", "| b | FAIL | slow \\| very |", "", "Done."]


def test_table_escapes_what_would_break_a_row():
    assert table(["x", "y"], [("a|b", "line1\nline2"), (1, None)]).splitlines() == [
        "| x | y |", "|---|---|", "| a\\|b | line1 line2 |", "| 1 | None |"]


def test_identifier():
    assert identifier("eu-west-1") == "eu_west_1" and identifier("booking") == "booking"


def test_readers_and_writers_count_and_hash_like_hashlib():
    payload = os.urandom(3 * CHUNK + 17)
    seen = []
    reader = HashingReader(io.BytesIO(payload), progress=lambda done, total: seen.append((done, total)),
                           total=len(payload))
    sink = io.BytesIO()
    writer = HashingWriter(sink)
    assert copy(reader, writer) == len(payload)
    expected = hashlib.sha256(payload).hexdigest()
    assert reader.hexdigest == writer.hexdigest == expected and sink.getvalue() == payload
    assert reader.size == writer.size == len(payload)
    assert seen[-1] == (len(payload), len(payload)) and len(seen) >= 4
    assert sha256_of(io.BytesIO(payload)) == (expected, len(payload))
    counter = CountingReader(io.BytesIO(b"abc"))
    assert counter.read() == b"abc" and counter.size == 3 and counter.seconds >= 0


def test_decompress_frame_and_truncation_is_an_integrity_error():
    data = os.urandom(CHUNK) * 3
    frame = zstandard.ZstdCompressor(level=1).compress(data)
    out = io.BytesIO()
    assert decompress_frame(io.BytesIO(frame), out, what="obj", expected_size=len(data)) == len(data)
    assert out.getvalue() == data
    with pytest.raises(IntegrityError, match="obj: the zstd stream ends before its frame does"):
        decompress_frame(io.BytesIO(frame[: len(frame) // 2]), io.BytesIO(), what="obj", expected_size=len(data))


def test_decompression_memory_is_bounded_whatever_the_data():
    """512 MiB of zeros compress to a few KiB: one input chunk must not expand into one huge buffer."""
    size = 512 << 20
    frame = zstandard.ZstdCompressor(level=3).compress(bytes(size))
    assert len(frame) < CHUNK  # the whole frame is a single read

    class Sink:
        total = biggest = 0

        def write(self, data) -> int:
            self.total += len(data)
            self.biggest = max(self.biggest, len(data))
            return len(data)

    sink = Sink()
    decompress_frame(io.BytesIO(frame), sink, what="zeros", expected_size=size)
    assert sink.total == size and sink.biggest <= CHUNK


def test_a_repeated_error_is_said_once():
    from ops_project.common.checks import Check, failure_summary, render

    cause = "data.sqlite.zst: sha256 differs from the manifest (the object is corrupt)"
    checks = [Check("stored_sha256", False, "sha256 abc, manifest def"), Check("plaintext_sha256", False, cause),
              Check("engine_integrity", False, cause), Check("row_counts", False, cause),
              Check("rto_within_objective", True, "0.2s of 7200s")]
    summary = failure_summary(checks)
    assert summary == (f"stored_sha256: sha256 abc, manifest def; plaintext_sha256, engine_integrity, row_counts: "
                       f"{cause}")
    shown = render("verification", checks)
    assert shown.count(cause) == 1 and shown.count("same as plaintext_sha256") == 2
