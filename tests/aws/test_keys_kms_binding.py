"""KMS: data keys bound to their backup by the encryption context; manifests authenticated by an HMAC
key of the runbook side, so a backup written with another HMAC key (or none) is never trusted."""

from __future__ import annotations

import io

import pytest
from aws_backup_stores import LOCAL, REMOTE

from recovery.backup.catalog import Catalog, CopyState
from recovery.backup.keys import KmsKeys, backup_context
from recovery.backup.manifest import SourcePosition
from recovery.backup.naming import BackupName
from recovery.backup.repository import BackupMetadata, write_backup
from recovery.backup.stores import S3Store
from recovery.drivers.aws import AwsDriver
from recovery.errors import KeyUnavailable

REGION = "eu-west-1"


def _data_key(aws: AwsDriver) -> str:
    return str(aws.kms(REGION).create_key()["KeyMetadata"]["Arn"])


def test_kms_refuses_a_data_key_under_another_backups_context(aws: AwsDriver) -> None:
    keys = KmsKeys(aws, _data_key(aws), REGION)
    mine = backup_context("20261125-orders-daily", "orders", "daily")
    data_key = keys.new_data_key(context=mine)
    assert keys.unwrap(data_key.key_id, data_key.wrapped, context=mine).plaintext == data_key.plaintext
    with pytest.raises(KeyUnavailable, match="cannot decrypt the data key"):
        keys.unwrap(data_key.key_id, data_key.wrapped, context={**mine, "domain": "users"})


def test_a_backup_authenticated_with_another_hmac_key_is_not_trusted(aws: AwsDriver) -> None:
    kms = aws.kms(REGION)
    data_key_arn = _data_key(aws)
    foreign = kms.create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")["KeyMetadata"]["Arn"]
    # The forger may generate data keys under the site's key (as the order hosts may), and made its own
    # HMAC key: it has no grant on the target's manifest key.
    forger = KmsKeys(aws, data_key_arn, REGION, mac_key_id=foreign)
    runbooks = KmsKeys(aws, data_key_arn, REGION)
    stores = (S3Store(aws, LOCAL, "local"), S3Store(aws, REMOTE, "remote"))
    metadata = BackupMetadata(SourcePosition(at="2026-11-25T10:00:00Z"), "1", "1.0.0", ())  # type: ignore[arg-type]
    write_backup(io.BytesIO(b"genuine"), BackupName.parse("20261125-users-daily"), metadata, stores, runbooks)
    write_backup(io.BytesIO(b"forged"), BackupName.parse("20261125-users-daily-2"), metadata, stores, forger)
    catalog = Catalog(stores[0], stores[1], runbooks)
    genuine, forged = (catalog.verify(entry.backup_id) for entry in catalog.entries())
    assert genuine.counts
    assert forged.local.state is CopyState.DAMAGED and forged.remote.state is CopyState.DAMAGED
    assert "not with this target's manifest key" in forged.local.detail
