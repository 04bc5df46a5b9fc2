"""One contract, every backend: `local` (a directory) and `s3` (a real SeaweedFS server)."""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from ops_project.common.errors import BucketMissingError, CredentialsError, ObjectMissingError, StorageError
from ops_project.storage import S3Credentials, open_store
from ops_project.storage.config import RegionConfig
from tests.conftest import unique
from tests.servers import ACCESS_KEY, SECRET_KEY, free_ports

PART = 5 << 20  # the S3 minimum, so multipart kicks in on modest objects


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_store(RegionConfig(name="here", kind="local", path=tmp_path / "region", create=True),
                          part_size=PART)
    weed = request.getfixturevalue("weed_pair")[0]
    bucket = weed.make_bucket(unique("contract"))
    region = RegionConfig(name="there", kind="s3", bucket=bucket, prefix="ops")
    return open_store(region, S3Credentials(weed.endpoint, ACCESS_KEY, SECRET_KEY), part_size=PART)


def test_put_get_exists_list_delete(store):
    store.check()
    store.put_bytes("backups/db/1/manifest.json", b'{"a": 1}')
    store.put_bytes("backups/db/1/data.bin", b"x" * 10)
    store.put_bytes("other/thing", b"y")
    assert store.get_bytes("backups/db/1/manifest.json") == b'{"a": 1}'
    assert store.exists("backups/db/1/data.bin")
    assert not store.exists("backups/db/2/data.bin")
    listed = {o.key: o.size for o in store.list("backups/")}
    assert listed == {"backups/db/1/manifest.json": 8, "backups/db/1/data.bin": 10}
    store.delete("backups/db/1/data.bin")
    assert not store.exists("backups/db/1/data.bin")
    assert [o.key for o in store.list("backups/")] == ["backups/db/1/manifest.json"]


def test_streaming_multipart_roundtrip(store):
    payload = os.urandom(PART * 2 + 12345)  # three parts, the last one short
    writer = store.writer("big/object")
    for i in range(0, len(payload), 1 << 20):
        writer.write(payload[i:i + (1 << 20)])
    assert not store.exists("big/object"), "an uncommitted object must not be visible"
    assert writer.commit() == len(payload)
    sha = hashlib.sha256()
    with store.reader("big/object") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    assert sha.hexdigest() == hashlib.sha256(payload).hexdigest()


def test_aborted_write_leaves_nothing(store):
    writer = store.writer("half/object")
    writer.write(os.urandom(PART + 10))
    writer.abort()
    assert not store.exists("half/object")
    assert list(store.list("half/")) == []


def test_missing_object_is_a_clear_error(store):
    with pytest.raises(ObjectMissingError, match="does not exist"):
        store.get_bytes("no/such/object")


def test_s3_missing_bucket(weed_pair):
    weed = weed_pair[0]
    region = RegionConfig(name="eu-x", kind="s3", bucket="no-such-bucket-here")
    store = open_store(region, S3Credentials(weed.endpoint, ACCESS_KEY, SECRET_KEY))
    with pytest.raises(BucketMissingError, match="bucket 'no-such-bucket-here' does not exist") as err:
        store.check()
    assert "regions.eu-x.bucket" in str(err.value)


def test_s3_wrong_credentials_names_the_variables_not_the_values(weed_pair):
    weed = weed_pair[0]
    bucket = weed.make_bucket(unique("creds"))
    region = RegionConfig(name="eu-x", kind="s3", bucket=bucket, access_key_id_env="EU_KEY",
                          secret_access_key_env="EU_SECRET")
    store = open_store(region, S3Credentials(weed.endpoint, ACCESS_KEY, "wrong-secret-value"))
    with pytest.raises(CredentialsError) as err:
        store.put_bytes("x", b"1")
    message = str(err.value)
    assert "credentials rejected" in message and "EU_KEY" in message and "EU_SECRET" in message
    assert "wrong-secret-value" not in message
    assert not weed.client().list_objects_v2(Bucket=bucket).get("Contents")


def test_s3_unreachable_endpoint():
    port = free_ports(1)[0]
    region = RegionConfig(name="gone", kind="s3", bucket="whatever")
    store = open_store(region, S3Credentials(f"http://127.0.0.1:{port}", ACCESS_KEY, SECRET_KEY))
    store.client.meta.config.retries["max_attempts"] = 1
    with pytest.raises(StorageError, match="unreachable"):
        store.check()


def test_interrupted_write_is_an_unfinished_upload_never_an_object(store):
    """A writer neither committed nor aborted (a crash) leaves no object, only an unfinished upload that
    cleanup can find and remove, in every backend alike."""
    writer = store.writer("backups/db/1/data.bin")
    writer.write(os.urandom(PART + 10))
    store.put_bytes("backups/db/1/manifest.json", b"{}")
    assert not store.exists("backups/db/1/data.bin")
    assert [o.key for o in store.list("backups/")] == ["backups/db/1/manifest.json"]
    (started,) = store.unfinished_uploads("backups/")
    time.sleep(2)
    moved = time.time()
    writer.write(os.urandom(PART + 10))  # a write still running shows its last sign of life
    deadline = time.monotonic() + 15  # (a part may still be in flight on its way to the server)
    while True:
        (upload,) = store.unfinished_uploads("backups/")
        if upload.last_activity >= moved - 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert upload.last_activity >= moved - 1 and upload.last_activity > started.last_activity
    assert upload.key == "backups/db/1/data.bin" and upload.last_activity > 0
    assert store.unfinished_uploads("other/") == []
    store.abort_upload(upload)
    assert store.unfinished_uploads("backups/") == []
    store.abort_upload(upload)  # already gone: not an error
    assert [o.key for o in store.list("backups/")] == ["backups/db/1/manifest.json"]


def test_put_if_absent_creates_once(store):
    assert store.put_if_absent("locks/a", b"first") is True
    assert store.put_if_absent("locks/a", b"second") is False
    assert store.get_bytes("locks/a") == b"first"
    store.delete("locks/a")
    assert store.put_if_absent("locks/a", b"third") is True


def test_list_is_in_key_order_and_delete_of_a_missing_key_is_fine(store):
    for key in ("b/2", "a/1", "b/10", "a/0"):
        store.put_bytes(key, b"-")
    assert [o.key for o in store.list("")] == ["a/0", "a/1", "b/10", "b/2"]
    store.delete("no/such/key")


def test_s3_part_size_grows_with_the_size_hint(weed_pair):
    weed = weed_pair[0]
    region = RegionConfig(name="there", kind="s3", bucket=weed.make_bucket(unique("hint")))
    store = open_store(region, S3Credentials(weed.endpoint, ACCESS_KEY, SECRET_KEY), part_size=PART)
    assert store.writer("a")._part_size == PART
    assert store.writer("a", size_hint=200 << 30)._part_size >= (200 << 30) // 9000  # 200 GiB in < 10,000 parts


class CuttingProxy:
    """A TCP proxy in front of a real S3 server that cuts one connection once ``cut_after`` bytes of a
    response have passed (a reset in the middle of a download), and records what clients sent."""

    def __init__(self, upstream: str, cut_after: int):
        import socket
        import threading

        self._upstream = upstream.removeprefix("http://").split(":")
        self._cut_after, self.cut, self.sent = cut_after, False, bytearray()
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.endpoint = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            up = socket.create_connection((self._upstream[0], int(self._upstream[1])))
            threading.Thread(target=self._pump, args=(client, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, True), daemon=True).start()

    def _pump(self, src, dst, downstream: bool) -> None:
        passed = 0
        try:
            while chunk := src.recv(65536):
                if not downstream:
                    self.sent += chunk
                passed += len(chunk)
                if downstream and not self.cut and passed > self._cut_after:
                    self.cut = True
                    dst.sendall(chunk[: len(chunk) // 2])
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        import socket

        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # a FIN now, even while the other pump is blocked reading
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._server.close()


def test_s3_download_resumes_after_a_reset_with_a_ranged_get(weed_pair):
    weed = weed_pair[0]
    bucket = weed.make_bucket(unique("resume"))
    payload = os.urandom(12 << 20)
    weed.client().put_object(Bucket=bucket, Key="big/object", Body=payload)
    proxy = CuttingProxy(weed.endpoint, cut_after=3 << 20)
    try:
        store = open_store(RegionConfig(name="cut", kind="s3", bucket=bucket),
                           S3Credentials(proxy.endpoint, ACCESS_KEY, SECRET_KEY))
        sha = hashlib.sha256()
        with store.reader("big/object") as fh:
            while chunk := fh.read(1 << 20):
                sha.update(chunk)
        assert proxy.cut and fh.resumes == 1
        assert sha.hexdigest() == hashlib.sha256(payload).hexdigest()
        assert b"range: bytes=" in bytes(proxy.sent).lower()  # only the rest was asked for again
    finally:
        proxy.close()


def test_s3_upload_memory_does_not_grow_with_the_part_size(weed_pair):
    """Parts grow with the database (10,000 at most): a 40 MiB part must wait on disk, not in memory."""
    import tracemalloc

    from ops_project.storage.s3 import MEMORY_PART_LIMIT

    weed = weed_pair[0]
    region = RegionConfig(name="there", kind="s3", bucket=weed.make_bucket(unique("mem")))
    store = open_store(region, S3Credentials(weed.endpoint, ACCESS_KEY, SECRET_KEY), part_size=40 << 20)
    chunk = os.urandom(1 << 20)
    sha = hashlib.sha256()
    tracemalloc.start()
    try:
        writer = store.writer("big/object")
        for _ in range(100):
            writer.write(chunk)
            sha.update(chunk)
        writer.commit()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert MEMORY_PART_LIMIT <= 16 << 20 and peak < 64 << 20, f"{peak / 2**20:.0f} MiB"  # not 5 × 40 MiB
    got = hashlib.sha256()
    with store.reader("big/object") as fh:
        while data := fh.read(1 << 20):
            got.update(data)
    assert got.hexdigest() == sha.hexdigest()
