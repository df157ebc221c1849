"""Both copies in S3 (moto): multipart upload with bounded parts in flight, streamed download, catalog."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from aws_backup_stores import LOCAL, REMOTE
from botocore.exceptions import EndpointConnectionError
from botocore.httpchecksum import Crc32Checksum

from recovery.backup.catalog import Catalog, CopyState, catalog_for
from recovery.backup.keys import KmsKeys
from recovery.backup.manifest import SourcePosition, TableSummary
from recovery.backup.naming import BackupName
from recovery.backup.repository import BackupMetadata, backup_names, read_backup, write_backup
from recovery.backup.stores import MAX_PARTS, MIB, PartBody, S3Store, least_part_size
from recovery.drivers.aws import AwsDriver, translate_error
from recovery.errors import ExternalFailure, IntegrityError, PreconditionFailed
from recovery.targets.model import AwsEndpoint, BackupStore, Target

Copies = tuple[S3Store, S3Store]
NAME = BackupName(date(2026, 11, 25), "orders", "realtime")
METADATA = BackupMetadata(
    source=SourcePosition(at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC), lsn="0/3000060"),
    schema_version="1",
    service_version="1.0.0",
    tables=(TableSummary(name="orders", rows=3, content_hash="ab" * 32),),
)


@pytest.fixture
def keys(aws: AwsDriver) -> KmsKeys:
    key_id = aws.kms("eu-west-1").create_key()["KeyMetadata"]["KeyId"]
    return KmsKeys(aws, key_id, "eu-west-1")


@pytest.fixture
def copies(aws: AwsDriver) -> Copies:
    return (
        S3Store(aws, LOCAL, "local", part_size=5 * MIB, parts_in_flight=2),
        S3Store(aws, REMOTE, "remote", part_size=5 * MIB, parts_in_flight=2),
    )


class PartConcurrency:
    """Counts UploadPart calls in flight at once, through botocore's event hooks."""

    def __init__(self, aws: AwsDriver, region: str) -> None:
        self.now = self.peak = self.calls = 0
        self._lock = threading.Lock()
        events = aws.s3(region).meta.events
        events.register("before-call.s3.UploadPart", self._start)
        events.register("after-call.s3.UploadPart", self._end)

    def _start(self, **_: Any) -> None:
        with self._lock:
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)

    def _end(self, **_: Any) -> None:
        with self._lock:
            self.now -= 1


def test_copies_upload_in_parts_and_download_streamed(aws: AwsDriver, keys: KmsKeys, copies: Copies) -> None:
    data = os.urandom(17 * MIB)  # incompressible: four 5 MiB parts per copy
    counters = [PartConcurrency(aws, store.region) for store in copies]
    manifest = write_backup(io.BytesIO(data), NAME, METADATA, copies, keys, chunk_size=1 * MIB)
    for counter in counters:
        assert counter.calls == 4 and 1 <= counter.peak <= 2
    s3 = aws.s3(LOCAL.region)
    head = s3.head_object(Bucket=LOCAL.bucket, Key="backups/orders/20261125-orders-realtime.bak")
    assert head["ContentLength"] == manifest.sizes.stored
    assert head["ETag"].strip('"').endswith("-4")  # completed as a four-part multipart upload
    assert manifest.key.key_id.startswith("arn:aws:kms:")
    for store in copies:
        out = io.BytesIO()
        read_backup(store, NAME, out, keys)
        assert out.getvalue() == data
        assert backup_names(store) == [NAME]
    assert not s3.list_multipart_uploads(Bucket=LOCAL.bucket).get("Uploads")


def test_both_copies_upload_the_same_pieces_in_parts_of_at_least_5_mib(aws: AwsDriver, keys: KmsKeys) -> None:
    """The writer hands both copies the same bytes objects and each keeps them as its parts' pieces, not
    copied: the copies share their parts' memory. Every part but the last is at least 5 MiB."""
    defaults = (S3Store(aws, LOCAL, "local"), S3Store(aws, REMOTE, "remote"))
    data = os.urandom(17 * MIB)  # incompressible: three parts of a little over 5 MiB, then the rest
    parts: dict[str, dict[int, tuple[bytes, ...]]] = {LOCAL.region: {}, REMOTE.region: {}}
    for region, seen in parts.items():
        aws.s3(region).meta.events.register(
            "before-call.s3.UploadPart",
            lambda params, seen=seen, **_: seen.update(
                {int(params["query_string"]["partNumber"]): params["body"].pieces}
            ),
        )
    write_backup(io.BytesIO(data), NAME, METADATA, defaults, keys, chunk_size=1 * MIB)
    local, remote = (sorted(seen.items()) for seen in parts.values())
    assert len(local) == len(remote) == 4
    for (_, local_pieces), (_, remote_pieces) in zip(local, remote, strict=True):
        assert len(local_pieces) == len(remote_pieces)
        assert all(a is b for a, b in zip(local_pieces, remote_pieces, strict=True))
    sizes = sorted((sum(map(len, pieces)) for _, pieces in local), reverse=True)
    assert all(5 * MIB <= size <= 6 * MIB for size in sizes[:3]) and sizes[3] < 5 * MIB
    for store in defaults:
        out = io.BytesIO()
        read_backup(store, NAME, out, keys)
        assert out.getvalue() == data


def test_each_part_carries_the_crc32_botocore_would_compute(
    aws: AwsDriver, keys: KmsKeys, copies: Copies
) -> None:
    sent: list[tuple[str, str]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        body = params["body"]
        body.seek(0)
        computed = Crc32Checksum().handle(io.BytesIO(body.read()))
        sent.append((params["headers"]["x-amz-checksum-crc32"], computed))
        body.seek(0)

    signed: list[str] = []
    events = aws.s3(LOCAL.region).meta.events
    events.register("before-call.s3.UploadPart", record)
    events.register(
        "before-send.s3.UploadPart",
        lambda request, **_: signed.append(request.headers["X-Amz-Content-SHA256"]),
    )
    write_backup(io.BytesIO(os.urandom(12 * MIB)), NAME, METADATA, copies, keys, chunk_size=1 * MIB)
    assert len(sent) == 3
    assert all(given == computed for given, computed in sent), sent
    assert signed == [b"UNSIGNED-PAYLOAD"] * 3  # the body is not hashed again for the signature


def test_the_least_part_size_doubles_every_1000_parts() -> None:
    sizes = [least_part_size(n) // MIB for n in (1, 1000, 1001, 2000, 2001, 10_000)]
    assert sizes == [5, 5, 10, 10, 20, 2560]
    assert sum(least_part_size(n) for n in range(1, MAX_PARTS + 1)) == 1_023_000 * 5 * MIB


def test_a_part_body_reads_across_its_pieces_and_rewinds() -> None:
    pieces = (b"ab", b"", b"cdefg", b"h")
    body = PartBody(pieces)
    assert body.read(3) == b"abc" and body.tell() == 3
    assert body.read() == b"defgh" and body.read(1) == b""
    assert body.seek(0, io.SEEK_END) == 8 and body.seek(-2, io.SEEK_CUR) == 6 and body.read(5) == b"gh"
    body.seek(0)
    assert body.read(100) == b"abcdefgh"
    with pytest.raises(ValueError, match="negative seek"):
        body.seek(-1)


def test_small_backup_is_a_single_part_and_overwrite_is_refused(keys: KmsKeys, copies: Copies) -> None:
    write_backup(io.BytesIO(b"orders\t1\n"), NAME, METADATA, copies, keys)
    with pytest.raises(PreconditionFailed, match="already exists; backups are never overwritten"):
        write_backup(io.BytesIO(b"orders\t2\n"), NAME, METADATA, copies, keys)
    with pytest.raises(PreconditionFailed):
        copies[1].put_bytes("orders/20261125-orders-realtime.bak.manifest.json", b"{}")
    out = io.BytesIO()
    read_backup(copies[1], NAME, out, keys)
    assert out.getvalue() == b"orders\t1\n"


def test_failed_source_aborts_uploads_leaving_nothing(aws: AwsDriver, keys: KmsKeys, copies: Copies) -> None:
    def broken_dump() -> Iterator[bytes]:
        yield os.urandom(12 * MIB)
        raise OSError("pg_dump died")

    with pytest.raises(OSError, match="pg_dump died"):
        write_backup(broken_dump(), NAME, METADATA, copies, keys, chunk_size=1 * MIB)
    for store in copies:
        assert store.list_keys() == []
        assert not aws.s3(store.region).list_multipart_uploads(Bucket=store.bucket).get("Uploads")


def test_catalog_states_for_missing_or_tampered_copy(aws: AwsDriver, keys: KmsKeys, copies: Copies) -> None:
    write_backup(io.BytesIO(os.urandom(MIB)), NAME, METADATA, copies, keys)
    second = BackupName(NAME.day, "orders", "realtime", 2)
    write_backup(io.BytesIO(os.urandom(MIB)), second, METADATA, copies, keys)
    catalog = Catalog(*copies, keys=keys)
    assert [entry.counts for entry in catalog.verify_all()] == [True, True]

    # The remote copy of the first disappears; the local copy of the second is replaced by other bytes.
    aws.s3(REMOTE.region).delete_object(
        Bucket=REMOTE.bucket, Key="backups/orders/20261125-orders-realtime.bak"
    )
    local_key = "backups/orders/20261125-orders-realtime-2.bak"
    stored = aws.s3(LOCAL.region).get_object(Bucket=LOCAL.bucket, Key=local_key)["Body"].read()
    tampered = stored[:-1] + bytes([stored[-1] ^ 1])
    aws.s3(LOCAL.region).put_object(Bucket=LOCAL.bucket, Key=local_key, Body=tampered)

    first, after = catalog.verify_all()
    assert (first.local.state, first.remote.state) == (CopyState.VERIFIED, CopyState.MISSING)
    assert (after.local.state, after.remote.state) == (CopyState.DAMAGED, CopyState.VERIFIED)
    assert not first.counts and not after.counts
    assert "s3://orders-backup-local/backups/orders/20261125-orders-realtime-2.bak" in after.local.detail
    with pytest.raises(IntegrityError, match=r"chunk \d+ failed authentication"):
        read_backup(copies[0], second, io.BytesIO(), keys)


def test_missing_bucket_is_one_line_naming_the_operation_and_resource(aws: AwsDriver) -> None:
    store = S3Store(aws, BackupStore(bucket="no-such-bucket", region="eu-west-1"), "local")
    with pytest.raises(ExternalFailure) as caught:
        store.list_keys()
    message = caught.value.message
    assert message.startswith(
        "AWS refused to list on s3://no-such-bucket/backups/ (local copy): NoSuchBucket"
    )
    assert "\n" not in message and "testing" not in message


def test_unreachable_endpoint_is_translated() -> None:
    error = translate_error(
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9/"), "upload part 3", "s3://b/k (remote copy)"
    )
    assert isinstance(error, ExternalFailure)
    assert error.message == (
        "cannot reach http://127.0.0.1:9/ to upload part 3 on s3://b/k (remote copy) after retrying; "
        "check the endpoint and the network"
    )


def test_driver_uses_the_targets_endpoint_and_bounded_retries() -> None:
    driver = AwsDriver(AwsEndpoint(endpoint_url="http://127.0.0.1:8999"))
    client = driver.s3("eu-central-1")
    assert client.meta.endpoint_url == "http://127.0.0.1:8999"
    assert client.meta.region_name == "eu-central-1"
    assert client.meta.config.retries == {"total_max_attempts": 5, "mode": "standard"}
    assert driver.s3("eu-central-1") is client


def test_catalog_for_a_target_uses_its_stores_and_kms_key(aws: AwsDriver) -> None:
    key_arn = aws.kms("eu-west-1").create_key()["KeyMetadata"]["Arn"]
    target = Target.model_validate(
        {
            "name": "staging",
            "kind": "aws",
            "state_dir": "/var/lib/order-recovery/staging",
            "inventory": "/etc/order-recovery/hosts.yml",
            **{
                site: {
                    "name": site,
                    "region": region,
                    "hosts": [
                        {
                            "name": f"{site}-app",
                            "address": "10.0.0.1",
                            "ssh_user": "deploy",
                            "base_dir": "/srv/orders",
                            "service_port": 8080,
                        }
                    ],
                    "database": {"address": "10.0.0.2"},
                }
                for site, region in (("primary", "eu-west-1"), ("standby", "eu-central-1"))
            },
            "backup": {"local": LOCAL.model_dump(), "remote": REMOTE.model_dump()},
            "keys": {"kind": "kms", "kms_key_id": key_arn, "region": "eu-west-1"},
            "traffic": {
                "hosted_zone_id": "Z1",
                "record_name": "orders.example.com",
                "front_door_url": "https://o/",
            },
        }
    )
    catalog = catalog_for(target, aws)
    assert (catalog.local.describe("x"), catalog.remote.describe("x")) == (
        "s3://orders-backup-local/backups/x (local copy)",
        "s3://orders-backup-remote/backups/x (remote copy)",
    )
    assert isinstance(catalog.local, S3Store) and catalog.keys is not None
    manifest = write_backup(
        io.BytesIO(b"orders\t1\n"), NAME, METADATA, (catalog.local, catalog.remote), catalog.keys
    )
    assert manifest.key.key_id == key_arn
    assert catalog.verify(NAME.backup_id).counts
