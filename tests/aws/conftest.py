"""moto in process: AWS without a network port, with credentials that can only reach the mock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_backup_stores import LOCAL, REMOTE
from moto import mock_aws

from recovery.backup.keys import DEFAULT_MANIFEST_MAC_KEY
from recovery.drivers.aws import AwsDriver


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsDriver]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        driver = AwsDriver()
        for store in (LOCAL, REMOTE):
            driver.s3(store.region).create_bucket(
                Bucket=store.bucket, CreateBucketConfiguration={"LocationConstraint": store.region}
            )
        # The HMAC key that authenticates manifests, under the alias a target uses by default.
        kms = driver.kms("eu-west-1")
        mac_key = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
        kms.create_alias(AliasName=DEFAULT_MANIFEST_MAC_KEY, TargetKeyId=mac_key)
        yield driver
