"""Where backup copies live: an S3 bucket (boto3) or a host directory, behind one interface.

Both stores are write-once: creating an object that already exists is refused (S3 `If-None-Match: *`,
a hard link on the filesystem), so a backup is never overwritten. Uploads are multipart with a bounded
number of parts in flight, so memory stays bounded and uploading overlaps encoding. Downloads are one
streamed GET: moto's server copies the whole object for every ranged GET, so ranged parallel downloads
(boto3's `download_file`) are much slower against the lab and no faster against S3 for a stream consumer.
"""

from __future__ import annotations

import base64
import bisect
import io
import itertools
import os
import threading
import zlib
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
MIN_PART_SIZE = 5 * MIB  # S3's minimum for every part but the last
DEFAULT_PART_SIZE = MIN_PART_SIZE
# Every 1,000 parts the least part size doubles: a backup under 4.9 GiB uploads 5 MiB parts (the
# memory a copy holds), and S3's 10,000 parts still hold 1,023,000 x 5 MiB, about 4.9 TiB.
PARTS_PER_SIZE_STEP = 1000
MAX_PARTS = 10_000  # S3's limit per multipart upload
# One part uploading per copy while the next one fills: the copies then share every part they hold
# (the part filling, the one each copy sends, the one waiting for a copy still sending), about 15 MiB
# for a two-copy backup of any size; with two per copy a copy running ahead of the other holds older
# parts too, 24-30 MiB measured (tests/unit/backup/test_repository_memory_flat.py). A target raises it
# per copy (`parts_in_flight`) for a link slower than the codec.
DEFAULT_PARTS_IN_FLIGHT = 1


def least_part_size(number: int, first: int = DEFAULT_PART_SIZE) -> int:
    """The least size of part `number` (counted from 1) of an upload whose first parts are `first`
    bytes. Pure."""
    return first << ((number - 1) // PARTS_PER_SIZE_STEP)


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


def part_crc32(pieces: tuple[bytes, ...]) -> str:
    """The part's CRC32 as S3's `x-amz-checksum-crc32` carries it (base64 of the 4 big-endian bytes).
    Pure."""
    crc = 0
    for piece in pieces:
        crc = zlib.crc32(piece, crc)
    return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")


class PartBody(io.RawIOBase):
    """One part as the pieces it was written in, read as one seekable stream: nothing is joined or
    copied, so every copy uploading the same part reads the same bytes objects."""

    def __init__(self, pieces: tuple[bytes, ...]) -> None:
        super().__init__()
        self.pieces = pieces
        self._starts = list(itertools.accumulate((len(piece) for piece in pieces), initial=0))
        self._size = self._starts[-1]
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def read(self, size: int | None = -1, /) -> bytes:
        # Slices of the pieces, not readinto's buffer and then its copy: botocore reads each part once
        # in 1 MiB blocks for its checksum while sending another, in every upload thread.
        end = self._size if size is None or size < 0 else min(self._size, self._position + size)
        taken: list[bytes] = []
        while self._position < end:
            index = bisect.bisect_right(self._starts, self._position) - 1
            offset = self._position - self._starts[index]
            piece = self.pieces[index]
            length = min(end - self._position, len(piece) - offset)
            taken.append(piece[offset : offset + length])
            self._position += length
        return taken[0] if len(taken) == 1 else b"".join(taken)

    def readinto(self, buffer: Any) -> int:
        with memoryview(buffer) as view, view.cast("B") as out:
            data = self.read(len(out))
            out[: len(data)] = data
            return len(data)


class _MultipartUpload:
    """A sink that uploads parts in parallel, never holding more than `in_flight` parts uploading.

    Writes are kept as they are handed over until they add up to a part (at least
    `least_part_size(n)`): a writer feeding several copies hands each the same bytes objects, so the
    copies share their parts' memory instead of each buffering and copying the stream.
    """

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
        self._pieces: list[bytes] = []
        self._pending = 0
        self._futures: list[Future[dict[str, Any]]] = []
        with AwsDriver.translate("start a multipart upload", where):
            self._upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]

    def write(self, data: bytes) -> int:
        piece = data if type(data) is bytes else bytes(data)  # immutable, so it can be kept as it is
        if piece:
            self._pieces.append(piece)
            self._pending += len(piece)
        if self._pending >= least_part_size(len(self._futures) + 1, self._part_size):
            self._send_pending()
        return len(data)

    def _send_pending(self) -> None:
        pieces, self._pieces, self._pending = tuple(self._pieces), [], 0
        self._send(pieces)

    def _send(self, pieces: tuple[bytes, ...]) -> None:
        self._raise_failed()
        number = len(self._futures) + 1
        if number > MAX_PARTS:
            raise UsageError(f"{self._where} would need more than S3's {MAX_PARTS:,} parts; split the backup")
        self._slots.acquire()  # back-pressure: wait while `in_flight` parts are uploading
        try:
            future = self._pool.submit(self._upload_part, number, pieces)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _upload_part(self, number: int, pieces: tuple[bytes, ...]) -> dict[str, Any]:
        with AwsDriver.translate(f"upload part {number}", self._where):
            answer = self._s3.upload_part(
                # A stream, not bytes: the HTTP layer would join a bytes body to the request head, a
                # copy of every part in flight; the stream reads the pieces where they are.
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=PartBody(pieces),
                # Given, botocore does not compute it by reading the part through 1 MiB copies (2 MiB
                # per upload thread, measured); the same CRC32 it would send.
                ChecksumCRC32=part_crc32(pieces),
            )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _raise_failed(self) -> None:
        for future in self._futures:
            if future.done() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]

    def complete(self) -> None:
        if self._pieces or not self._futures:
            self._send_pending()
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
    local, remote = target.backup.local, target.backup.remote
    return (
        S3Store(aws, local, "local", parts_in_flight=local.parts_in_flight),
        S3Store(aws, remote, "remote", parts_in_flight=remote.parts_in_flight),
    )
