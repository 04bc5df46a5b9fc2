"""The ``s3`` backend: any S3-compatible endpoint (AWS S3, Cloudflare R2, MinIO, SeaweedFS).

Uploads are multipart with a fixed part size, so memory stays bounded whatever the object's
size; botocore's standard retry mode backs off on throttling and 5xx. An upload is visible only
after ``CompleteMultipartUpload``; an aborted or interrupted one leaves nothing listed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError
from urllib3.exceptions import HTTPError as Urllib3Error

from ops_project.common.errors import BucketMissingError, CredentialsError, ObjectMissingError, StorageError
from ops_project.storage import ObjectInfo, S3Credentials, UnfinishedUpload
from ops_project.storage.config import RegionConfig

_CRED_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken",
               "ExpiredToken", "AuthorizationHeaderMalformed"}
_MISSING_BUCKET = {"NoSuchBucket"}
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}


class S3Store:
    def __init__(self, region: RegionConfig, creds: S3Credentials, *, part_size: int = 8 << 20):
        self.region = region.name
        self.bucket = region.bucket
        self.prefix = region.prefix.strip("/")
        self.part_size = part_size
        self._cfg = region
        self._endpoint = creds.endpoint_url
        config = Config(
            retries={"max_attempts": 6, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            s3={"addressing_style": "path"} if creds.endpoint_url else {},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session()
        self.client = session.client(
            "s3",
            endpoint_url=creds.endpoint_url,
            region_name=region.region_name or "us-east-1",
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            config=config,
        )

    def __repr__(self) -> str:
        return f"S3Store({self.region!r}, bucket={self.bucket!r})"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def describe(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _error(self, exc: Exception, action: str, key: str = "") -> StorageError:
        where = f"region {self.region}: {action} {self.describe(key)}"
        if isinstance(exc, EndpointConnectionError) or (
            isinstance(exc, BotoCoreError) and not isinstance(exc, ClientError)
        ):
            return StorageError(f"{where} failed: endpoint {self._endpoint or 'AWS'} unreachable ({exc}); "
                                "check that the server is up and the endpoint URL is right")
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_BUCKET:
                return BucketMissingError(
                    f"{where} failed: bucket {self.bucket!r} does not exist at {self._endpoint or 'AWS'}; "
                    f"create it or fix regions.{self.region}.bucket in the configuration")
            if code in _CRED_CODES:
                names = " and ".join(filter(None, [self._cfg.access_key_id_env, self._cfg.secret_access_key_env]))
                hint = f"check the variables {names}" if names else "check the default AWS credential chain"
                return CredentialsError(f"{where} failed: credentials rejected ({code}); {hint}")
            if code in _MISSING_KEY:
                return ObjectMissingError(f"{where} failed: object does not exist")
            return StorageError(f"{where} failed: {code}: {exc.response.get('Error', {}).get('Message', '')}")
        return StorageError(f"{where} failed: {exc}")

    def check(self) -> None:
        try:
            self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "listing") from None

    def writer(self, key: str, size_hint: int | None = None) -> _MultipartWriter:
        """``size_hint``: an upper bound of the object's size, so that it fits in S3's 10,000 parts."""
        part = self.part_size
        if size_hint:
            part = max(part, -(-size_hint // 9000))  # equal parts (R2 requires it), at most 9,000 of them
        return _MultipartWriter(self, key, part)

    def reader(self, key: str) -> BinaryIO:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "reading", key) from None
        return _Body(self, key, resp)

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentMD5=_md5(data))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "writing", key) from None

    def put_if_absent(self, key: str, data: bytes) -> bool:
        try:  # a conditional write (AWS, R2, MinIO and SeaweedFS honour If-None-Match: *)
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ContentMD5=_md5(data),
                                   IfNoneMatch="*")
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("PreconditionFailed", "412",
                                                                   "ConditionalRequestConflict"):
                return False
            raise self._error(exc, "creating", key) from None
        except BotoCoreError as exc:
            raise self._error(exc, "creating", key) from None
        return True

    def get_bytes(self, key: str) -> bytes:
        with self.reader(key) as fh:
            return fh.read()

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in _MISSING_KEY:
                return False
            raise self._error(exc, "checking", key) from None
        except BotoCoreError as exc:
            raise self._error(exc, "checking", key) from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix))
            for page in pages:
                for obj in page.get("Contents", []):
                    yield ObjectInfo(obj["Key"][strip:], obj["Size"], obj["LastModified"].timestamp())
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "listing", prefix) from None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "deleting", key) from None

    def unfinished_uploads(self, prefix: str = "") -> list[UnfinishedUpload]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        found = []
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix))
            for page in pages:
                for up in page.get("Uploads", []):
                    found.append(UnfinishedUpload(up["Key"][strip:], up["UploadId"], self._last_activity(up)))
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "listing unfinished uploads under", prefix) from None
        return sorted(found, key=lambda u: u.last_activity)

    def _last_activity(self, upload: dict) -> float:
        """When the upload last moved: its start, or its newest part (a 300 GiB upload takes hours)."""
        newest = upload["Initiated"].timestamp()
        pages = self.client.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=upload["Key"],
                                                                 UploadId=upload["UploadId"])
        try:
            for page in pages:
                for part in page.get("Parts", []):
                    newest = max(newest, part["LastModified"].timestamp())
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) != "NoSuchUpload":  # finished meanwhile: fine
                raise
        return newest

    def abort_upload(self, upload: UnfinishedUpload) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._key(upload.key),
                                               UploadId=upload.upload_id)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) == "NoSuchUpload":
                return  # already gone: the contract's outcome
            raise self._error(exc, "aborting the unfinished upload of", upload.key) from None
        except BotoCoreError as exc:
            raise self._error(exc, "aborting the unfinished upload of", upload.key) from None


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


class _Body:
    """A streaming GET body that resumes where it stopped: after a connection reset or a stall it asks
    again for the rest only (a ranged GET, pinned to the same object version by its ETag), a few times
    with backoff, instead of starting a large download over. Errors come out as StorageError."""

    RESUMES = 4
    BACKOFF_SECONDS = 0.5

    def __init__(self, store: S3Store, key: str, resp: dict):
        self._store, self._key = store, key
        self._body, self._etag = resp["Body"], resp.get("ETag")
        self._length = resp.get("ContentLength")
        self._pos = 0
        self.resumes = 0

    def read(self, n: int = -1) -> bytes:
        for attempt in range(self.RESUMES + 1):
            try:
                data = self._body.read(None if n is None or n < 0 else n)
                self._pos += len(data)
                return data
            except (BotoCoreError, OSError, Urllib3Error, http.client.HTTPException) as exc:
                if attempt == self.RESUMES:
                    raise self._store._error(exc, "reading", self._key) from None
                time.sleep(self.BACKOFF_SECONDS * 2 ** attempt)
                self._resume(exc)
        raise AssertionError("unreachable")

    def _resume(self, cause: Exception) -> None:
        """Ask for the bytes from ``_pos`` on; a reopen that fails is retried by ``read``'s loop."""
        with contextlib.suppress(Exception):
            self._body.close()
        s = self._store
        try:
            resp = s.client.get_object(Bucket=s.bucket, Key=s._key(self._key), Range=f"bytes={self._pos}-",
                                       **({"IfMatch": self._etag} if self._etag else {}))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("PreconditionFailed", "412"):
                raise StorageError(f"region {s.region}: {s.describe(self._key)} changed while it was being read; "
                                   f"read it again") from None
            raise s._error(exc, "resuming the download of", self._key) from None
        except BotoCoreError:
            self._body = _Failing(cause)  # still down: the next read attempt waits and tries again
            return
        self._body = resp["Body"]
        self.resumes += 1

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Failing:
    """A body that fails again with the original error (the server is still unreachable)."""

    def __init__(self, cause: Exception):
        self._cause = cause

    def read(self, _n=None) -> bytes:
        raise self._cause

    def close(self) -> None:
        pass


class _Part:
    """One part on its way: spooled to disk beyond ``MEMORY_PART_LIMIT``.

    Its MD5 is computed by the thread that uploads it, not by the one that fills the next part: hashlib lets go
    of the GIL, so on two cores the copy's reading and hashing of the source goes on meanwhile."""

    def __init__(self):
        self.file = tempfile.SpooledTemporaryFile(max_size=MEMORY_PART_LIMIT)  # noqa: SIM115 - closed after upload
        self.size = 0

    def write(self, data) -> None:
        self.file.write(data)
        self.size += len(data)

    def content_md5(self) -> str:
        """The Content-MD5 of what was written (read back from the part's own file), the file rewound.

        It proves the trip from this file to the server; the copy's end-to-end proof is the sha256 of the
        object re-read at the destination against the manifest (``replicate.verify_stored``)."""
        md5 = hashlib.md5(usedforsecurity=False)
        self.file.seek(0)
        while chunk := self.file.read(1 << 20):
            md5.update(chunk)
        self.file.seek(0)
        return base64.b64encode(md5.digest()).decode()

    def close(self) -> None:
        self.file.close()


# A part larger than this waits on disk, not in memory: parts grow with the database (S3 allows 10,000),
# so memory must not (IN_FLIGHT + 1 parts of at most this much, whatever the size).
MEMORY_PART_LIMIT = 16 << 20


class _MultipartWriter:
    """Fills one part at a time; at most ``IN_FLIGHT`` parts uploading while the next one fills."""

    IN_FLIGHT = 4

    def __init__(self, store: S3Store, key: str, part_size: int):
        self._s, self._key, self._part_size = store, key, part_size
        self._part = _Part()
        self._open_parts: list[_Part] = [self._part]
        self._upload_id: str | None = None
        self._parts: list[Future] = []
        self._pool: ThreadPoolExecutor | None = None
        self._size = 0

    def _start(self) -> None:
        try:
            resp = self._s.client.create_multipart_upload(Bucket=self._s.bucket, Key=self._s._key(self._key))
        except (ClientError, BotoCoreError) as exc:
            raise self._s._error(exc, "starting upload of", self._key) from None
        self._upload_id = resp["UploadId"]
        self._pool = ThreadPoolExecutor(max_workers=self.IN_FLIGHT, thread_name_prefix="s3-part")

    def _upload_part(self, number: int, part: _Part) -> dict:
        try:
            # Content-MD5: the server rejects a part that arrives different from what was sent.
            md5 = part.content_md5()
            resp = self._s.client.upload_part(Bucket=self._s.bucket, Key=self._s._key(self._key),
                                              UploadId=self._upload_id, PartNumber=number, Body=part.file,
                                              ContentLength=part.size, ContentMD5=md5)
        except (ClientError, BotoCoreError) as exc:
            raise self._s._error(exc, f"uploading part {number} of", self._key) from None
        finally:
            part.close()
        return {"PartNumber": number, "ETag": resp["ETag"]}

    def _flush_part(self) -> None:
        if self._upload_id is None:
            self._start()
        # Back-pressure: wait for the oldest part while IN_FLIGHT are uploading (bounded memory and disk).
        pending = [f for f in self._parts if not f.done()]
        if len(pending) >= self.IN_FLIGHT:
            pending[0].result()
        for f in self._parts:
            if f.done():
                f.result()  # surfaces a failed part at once
        self._parts.append(self._pool.submit(self._upload_part, len(self._parts) + 1, self._part))
        self._part = _Part()
        self._open_parts = [*(p for p in self._open_parts if not p.file.closed), self._part]

    def write(self, data) -> int:
        view = memoryview(data)
        while view:
            room = self._part_size - self._part.size
            self._part.write(view[:room])
            view = view[room:]
            if self._part.size >= self._part_size:
                self._flush_part()
        self._size += len(data)
        return len(data)

    def commit(self) -> int:
        if self._upload_id is None:  # small object: a single PUT
            try:
                md5 = self._part.content_md5()
                self._s.client.put_object(Bucket=self._s.bucket, Key=self._s._key(self._key), Body=self._part.file,
                                          ContentLength=self._part.size, ContentMD5=md5)
            except (ClientError, BotoCoreError) as exc:
                raise self._s._error(exc, "writing", self._key) from None
            finally:
                self._part.close()
            return self._size
        if self._part.size:
            self._flush_part()
        try:
            parts = [f.result() for f in self._parts]
            self._s.client.complete_multipart_upload(
                Bucket=self._s.bucket, Key=self._s._key(self._key), UploadId=self._upload_id,
                MultipartUpload={"Parts": parts})
            stored = self._s.client.head_object(Bucket=self._s.bucket, Key=self._s._key(self._key))["ContentLength"]
        except (ClientError, BotoCoreError) as exc:
            self.abort()
            raise self._s._error(exc, "completing upload of", self._key) from None
        except BaseException:
            self.abort()
            raise
        finally:
            if self._pool:
                self._pool.shutdown(wait=False)
            self._part.close()
        if stored != self._size:
            self._s.delete(self._key)
            raise StorageError(f"region {self._s.region}: {self._s.describe(self._key)} holds {stored} bytes after "
                               f"upload, {self._size} were sent; the object was removed")
        return self._size

    def abort(self) -> None:
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for part in self._open_parts:  # parts never sent (cancelled) and the one filling
            part.close()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                self._s.client.abort_multipart_upload(Bucket=self._s.bucket, Key=self._s._key(self._key),
                                                      UploadId=upload_id)
            except (ClientError, BotoCoreError):
                pass  # the server may be gone; an unfinished upload is never listed as an object
