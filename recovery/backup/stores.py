"""Where backup copies live: an S3 bucket (boto3) or a host directory, behind one interface.

Both stores are write-once: creating an object that already exists is refused (S3 `If-None-Match: *`,
a hard link on the filesystem), so a backup is never overwritten. Uploads are multipart with a bounded
number of parts in flight, so memory stays bounded and uploading overlaps encoding. Downloads are one
streamed GET: moto's server copies the whole object for every ranged GET, so ranged parallel downloads
(boto3's `download_file`) are much slower against the lab and no faster against S3 for a stream consumer.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from recovery.backup.codec import Readable, Sink
from recovery.drivers.aws import OBJECT_NOT_FOUND_CODES, AwsDriver, aws_call
from recovery.errors import ExternalFailure, PreconditionFailed, UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from recovery.targets.model import BackupStore as StoreAddress
    from recovery.targets.model import Target

MIB = 1024 * 1024
DEFAULT_PART_SIZE = 8 * MIB
MIN_PART_SIZE = 5 * MIB  # S3's minimum for every part but the last
DEFAULT_PARTS_IN_FLIGHT = 4


class ObjectStore(Protocol):
    """One copy's storage. Keys are relative to the store (`<domain>/<name>`); the prefix is the store's."""

    label: str

    def describe(self, key: str) -> str: ...

    def create(self, key: str) -> AbstractContextManager[Sink]:
        """A sink for a new object; the object appears only if the block ends without error."""
        ...

    def open(self, key: str) -> AbstractContextManager[Readable]:
        """A readable stream of the object."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes | None: ...

    def head(self, key: str) -> int | None:
        """The object's size in bytes, or None when it does not exist."""
        ...

    def list_keys(self, under: str = "") -> list[str]: ...

    def delete(self, key: str) -> None: ...


def _already_exists(where: str) -> PreconditionFailed:
    return PreconditionFailed(f"{where} already exists; backups are never overwritten, take the next name")


class _MultipartUpload:
    """A sink that uploads fixed-size parts in parallel, never holding more than `in_flight` parts."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        key: str,
        where: str,
        part_size: int,
        in_flight: int,
        pool: ThreadPoolExecutor,
    ) -> None:
        self._s3, self._bucket, self._key, self._where = s3, bucket, key, where
        self._part_size = part_size
        self._slots = threading.BoundedSemaphore(in_flight)
        self._pool = pool
        self._buffer = bytearray()
        self._futures: list[Future[dict[str, Any]]] = []
        with AwsDriver.translate("start a multipart upload", where):
            self._upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

    @property
    def part_size(self) -> int:
        """The size of every part but the last: a writer that cuts whole parts hands them over as they are."""
        return self._part_size

    def write(self, data: bytes) -> int:
        if not self._buffer and len(data) == self._part_size and isinstance(data, bytes):
            # A whole part handed over as it is (the backup writer cuts parts once for both copies):
            # uploaded without a copy, the same bytes in flight to every copy.
            self._send(data)
            return len(data)
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            with memoryview(self._buffer) as view:
                part = bytes(view[: self._part_size])  # one copy, not a slice's and then bytes()'s
            del self._buffer[: self._part_size]
            self._send(part)
        return len(data)

    def _send(self, body: bytes) -> None:
        self._raise_failed()
        number = len(self._futures) + 1
        self._slots.acquire()  # back-pressure: wait while `in_flight` parts are uploading
        try:
            future = self._pool.submit(self._upload_part, number, body)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _upload_part(self, number: int, body: bytes) -> dict[str, Any]:
        with AwsDriver.translate(f"upload part {number}", self._where):
            answer = self._s3.upload_part(
                # A stream, not bytes: the HTTP layer would join a bytes body to the request head, a
                # copy of every part in flight; a BytesIO over the part shares its buffer.
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=io.BytesIO(body),
            )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _raise_failed(self) -> None:
        for future in self._futures:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def complete(self) -> None:
        if self._buffer or not self._futures:
            self._send(bytes(self._buffer))
            self._buffer.clear()
        parts = [future.result() for future in self._futures]
        aws_call(
            lambda: self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                IfNoneMatch="*",
            ),
            "complete the multipart upload",
            self._where,
            exists=lambda: _already_exists(self._where),
        )

    def abort(self) -> None:
        for future in self._futures:
            future.cancel()
        for future in self._futures:
            with suppress(Exception):
                future.result()
        # Best effort: a leftover upload costs storage, not correctness; the error that caused it matters.
        with suppress(ClientError, BotoCoreError):
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)


class S3Store:
    """A backup copy in an S3 bucket: objects under `<prefix><key>`."""

    def __init__(
        self,
        aws: AwsDriver,
        address: StoreAddress,
        label: str,
        *,
        part_size: int = DEFAULT_PART_SIZE,
        parts_in_flight: int = DEFAULT_PARTS_IN_FLIGHT,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise UsageError(f"part size {part_size} is below S3's minimum of {MIN_PART_SIZE} bytes")
        if parts_in_flight < 1:
            raise UsageError("parts_in_flight must be at least 1")
        self.label = label
        self.bucket = address.bucket
        self.region = address.region
        self.prefix = address.prefix
        self.endpoint_url = address.endpoint_url
        self._aws = aws
        self._part_size = part_size
        self._in_flight = parts_in_flight

    @property
    def _s3(self) -> S3Client:
        return self._aws.s3(self.region, self.endpoint_url)

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key} ({self.label} copy)"

    @contextmanager
    def create(self, key: str) -> Iterator[Sink]:
        where = self.describe(key)
        if self.head(key) is not None:
            raise _already_exists(where)
        with ThreadPoolExecutor(self._in_flight, thread_name_prefix=f"upload-{self.label}") as pool:
            upload = _MultipartUpload(
                self._s3, self.bucket, self.prefix + key, where, self._part_size, self._in_flight, pool
            )
            try:
                yield upload
                upload.complete()
            except BaseException:
                upload.abort()
                raise

    @contextmanager
    def open(self, key: str) -> Iterator[Readable]:
        where = self.describe(key)
        with AwsDriver.translate("download", where):
            body = self._s3.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
        try:
            yield _TranslatedStream(body, where)
        finally:
            body.close()

    def put_bytes(self, key: str, data: bytes) -> None:
        where = self.describe(key)
        aws_call(
            lambda: self._s3.put_object(
                Bucket=self.bucket, Key=self.prefix + key, Body=data, IfNoneMatch="*"
            ),
            "upload",
            where,
            exists=lambda: _already_exists(where),
        )

    def get_bytes(self, key: str) -> bytes | None:
        def download() -> bytes:
            with self._s3.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"] as body:
                data: bytes = body.read()
            return data

        return aws_call(download, "download", self.describe(key), absent=OBJECT_NOT_FOUND_CODES)

    def head(self, key: str) -> int | None:
        return aws_call(
            lambda: self._s3.head_object(Bucket=self.bucket, Key=self.prefix + key)["ContentLength"],
            "look up",
            self.describe(key),
            absent=OBJECT_NOT_FOUND_CODES,
        )

    def list_keys(self, under: str = "") -> list[str]:
        keys: list[str] = []
        with AwsDriver.translate("list", f"s3://{self.bucket}/{self.prefix}{under} ({self.label} copy)"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + under
            )
            for page in pages:
                keys.extend(item["Key"][len(self.prefix) :] for item in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        with AwsDriver.translate("delete", self.describe(key)):
            self._s3.delete_object(Bucket=self.bucket, Key=self.prefix + key)


class _TranslatedStream:
    """A streamed S3 body whose network failures surface as toolkit errors."""

    def __init__(self, body: Any, where: str) -> None:
        self._body = body
        self._where = where

    def read(self, size: int = -1, /) -> bytes:
        try:
            data: bytes = self._body.read(size if size >= 0 else None)
        except (BotoCoreError, OSError) as exc:
            raise ExternalFailure(
                f"download of {self._where} broke off: {type(exc).__name__}; retry"
            ) from exc
        return data


class FilesystemStore:
    """A backup copy in a host directory: files at `<root>/<prefix><key>`, written once."""

    def __init__(self, root: Path, label: str, prefix: str = "") -> None:
        self.label = label
        self.root = root
        self.prefix = prefix

    def _path(self, key: str) -> Path:
        relative = Path(self.prefix + key)
        if relative.is_absolute() or ".." in relative.parts or not key:
            raise UsageError(f"{key!r} is not a valid backup object key")
        return self.root / relative

    def describe(self, key: str) -> str:
        return f"{self._path(key)} ({self.label} copy)"

    @contextmanager
    def create(self, key: str) -> Iterator[Sink]:
        final = self._path(key)
        if final.exists():
            raise _already_exists(self.describe(key))
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(f".{final.name}.{os.getpid()}.{threading.get_ident()}.partial")
        try:
            with open(partial, "xb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            self._publish(partial, final, key)
        finally:
            partial.unlink(missing_ok=True)

    def _publish(self, partial: Path, final: Path, key: str) -> None:
        # A hard link fails if the name exists: the write-once rule holds even against a racing writer.
        try:
            os.link(partial, final)
        except FileExistsError:
            raise _already_exists(self.describe(key)) from None
        directory = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @contextmanager
    def open(self, key: str) -> Iterator[Readable]:
        path = self._path(key)
        if not path.is_file():
            raise ExternalFailure(f"{self.describe(key)} does not exist")
        with path.open("rb") as handle:
            yield handle

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.create(key) as sink:
            sink.write(data)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def head(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def list_keys(self, under: str = "") -> list[str]:
        base = self.root / self.prefix
        if not base.is_dir():
            return []
        keys = [
            path.relative_to(base).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.name.endswith(".partial")
        ]
        return sorted(key for key in keys if key.startswith(under))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def stores_for(target: Target, aws: AwsDriver) -> tuple[S3Store, S3Store]:
    """The target's local and remote backup copies."""
    return S3Store(aws, target.backup.local, "local"), S3Store(aws, target.backup.remote, "remote")
