"""`lab status` probes moto through the APIs the toolkit uses (recovery/lab/status.py), on moto's server."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator

import pytest
from moto.server import ThreadedMotoServer

from recovery.lab import aws
from recovery.lab.plan import KMS_ALIAS, LOCAL_BUCKET, PRIMARY_REGION, REMOTE_BUCKET, STANDBY_REGION
from recovery.lab.status import FrontDoorStatus, LabStatus, MotoStatus, observe_moto, problems


@pytest.fixture
def moto_server(free_port: Callable[[], int]) -> Iterator[tuple[ThreadedMotoServer, str]]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # moto's state lives in this process, shared by every server it runs: start from none.
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST"))
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _lab_aws_with_backups(url: str) -> str:
    """The lab's buckets and key, with backup objects in both buckets (as after `recovery backup run`)."""
    for bucket, region in ((LOCAL_BUCKET, PRIMARY_REGION), (REMOTE_BUCKET, STANDBY_REGION)):
        s3 = aws.client("s3", url, region)
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket=bucket, Key="20261206-orders-daily/manifest.json", Body=b"{}")
        # Data goes up in multipart uploads, as the backup store sends it.
        key = "20261206-orders-daily/data"
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"x" * 2048)
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
        )
    kms = aws.client("kms", url, PRIMARY_REGION)
    key_arn = str(kms.create_key(Description="backup data keys")["KeyMetadata"]["Arn"])
    kms.create_alias(AliasName=KMS_ALIAS, TargetKeyId=key_arn)
    return key_arn


def test_moto_holding_backups_is_healthy(moto_server: tuple[ThreadedMotoServer, str]) -> None:
    _, url = moto_server
    key_arn = _lab_aws_with_backups(url)

    status = observe_moto(url, key_arn)

    assert status == MotoStatus(url=url, reachable=True, failures=())


def test_moto_down_is_a_failure_naming_each_api(moto_server: tuple[ThreadedMotoServer, str]) -> None:
    server, url = moto_server
    key_arn = _lab_aws_with_backups(url)
    server.stop()

    status = observe_moto(url, key_arn)

    assert status.reachable is False
    assert [failure.split(" did not answer")[0] for failure in status.failures] == [
        f"S3 bucket {LOCAL_BUCKET}",
        f"S3 bucket {REMOTE_BUCKET}",
        f"KMS key {key_arn}",
    ]
    found = _problems_of(status)
    assert len(found) == 3 and all(p.startswith(f"moto server at {url}: ") for p in found)


def test_a_missing_bucket_is_named(moto_server: tuple[ThreadedMotoServer, str]) -> None:
    _, url = moto_server
    key_arn = _lab_aws_with_backups(url)
    s3 = aws.client("s3", url, STANDBY_REGION)
    for version in s3.list_object_versions(Bucket=REMOTE_BUCKET).get("Versions", []):
        s3.delete_object(Bucket=REMOTE_BUCKET, Key=version["Key"], VersionId=version["VersionId"])
    s3.delete_bucket(Bucket=REMOTE_BUCKET)

    status = observe_moto(url, key_arn)

    assert status.reachable is False
    assert len(status.failures) == 1
    assert status.failures[0].startswith(f"S3 bucket {REMOTE_BUCKET} did not answer")


def _problems_of(moto: MotoStatus) -> list[str]:
    front_door = FrontDoorStatus("http://127.0.0.1:1", True, "127.0.0.11:2", "primary")
    status = LabStatus("/lab", "v1", moto, (), (), "primary", {}, front_door, 5)
    return problems(status)
