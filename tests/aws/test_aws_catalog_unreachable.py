"""One copy's store down (its endpoint refuses connections): the catalog calls that copy unreachable,
asks the dead store once, and a restore can still choose the other copy; a disabled KMS key refuses a
new backup before anything is written."""

from __future__ import annotations

import io
import socket
from datetime import UTC, date, datetime

import pytest
from aws_backup_stores import LOCAL, REMOTE

from recovery.backup.catalog import Catalog, CopyState
from recovery.backup.keys import KmsKeys
from recovery.backup.manifest import SourcePosition, TableSummary
from recovery.backup.naming import BackupName
from recovery.backup.repository import BackupMetadata, backup_names, write_backup
from recovery.backup.stores import S3Store
from recovery.drivers.aws import AwsDriver
from recovery.errors import KeyUnavailable
from recovery.restore.selection import select_backups
from recovery.targets.model import AwsEndpoint

NAME = BackupName(date(2026, 11, 25), "products", "daily")
METADATA = BackupMetadata(
    source=SourcePosition(at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC), lsn="0/3000060"),
    schema_version="1",
    service_version="v1",
    tables=(TableSummary(name="products", rows=3, content_hash="ab" * 32),),
)


def refused_endpoint() -> str:
    """A loopback port nobody listens on: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def backed_up_with_a_dead_store(aws: AwsDriver, keys: KmsKeys, dead: str) -> Catalog:
    """A backup written to both copies, then a catalog whose `dead` copy's endpoint refuses
    connections (one attempt per call keeps the test short)."""
    local, remote = S3Store(aws, LOCAL, "local"), S3Store(aws, REMOTE, "remote")
    write_backup(io.BytesIO(b"products" * 1000), NAME, METADATA, [local, remote], keys)
    dead_driver = AwsDriver(AwsEndpoint(endpoint_url=refused_endpoint()), attempts=1, connect_timeout=1)
    if dead == "local":
        return Catalog(S3Store(dead_driver, LOCAL, "local"), remote, keys)
    return Catalog(local, S3Store(dead_driver, REMOTE, "remote"), keys)


@pytest.fixture
def keys(aws: AwsDriver) -> KmsKeys:
    key_id = aws.kms("eu-west-1").create_key()["KeyMetadata"]["KeyId"]
    return KmsKeys(aws, key_id, "eu-west-1")


def test_a_store_that_refuses_connections_is_unreachable_and_the_other_copy_is_chosen(
    aws: AwsDriver, keys: KmsKeys
) -> None:
    catalog = backed_up_with_a_dead_store(aws, keys, "remote")

    [entry] = catalog.entries("products")
    assert entry.local.state is CopyState.PRESENT
    assert entry.remote.state is CopyState.UNREACHABLE
    assert "cannot reach" in entry.remote.detail and "remote copy" in entry.remote.detail
    verified = catalog.verify(entry.backup_id)
    assert verified.local.state is CopyState.VERIFIED and verified.remote.state is CopyState.UNREACHABLE
    assert not verified.counts  # one copy is not a backup that counts
    assert set(catalog.unreachable) == {"remote"}

    selection = select_backups([verified], ["products"])
    [choice] = selection.choices
    assert (choice.backup_id, choice.copy) == (NAME.backup_id, "local")


def test_an_unreachable_local_store_leaves_the_remote_copy_to_restore_from(
    aws: AwsDriver, keys: KmsKeys
) -> None:
    catalog = backed_up_with_a_dead_store(aws, keys, "local")

    verified = catalog.verify(NAME.backup_id)
    assert verified.local.state is CopyState.UNREACHABLE and verified.remote.state is CopyState.VERIFIED
    [choice] = select_backups([verified], ["products"]).choices
    assert choice.copy == "remote" and "local copy is unreachable" in choice.reason


def test_a_disabled_kms_key_refuses_the_backup_before_anything_is_written(
    aws: AwsDriver, keys: KmsKeys
) -> None:
    key_id = aws.kms("eu-west-1").create_key()["KeyMetadata"]["KeyId"]
    aws.kms("eu-west-1").disable_key(KeyId=key_id)
    disabled = KmsKeys(aws, key_id, "eu-west-1")
    local, remote = S3Store(aws, LOCAL, "local"), S3Store(aws, REMOTE, "remote")

    with pytest.raises(KeyUnavailable) as caught:
        write_backup(io.BytesIO(b"products" * 1000), NAME, METADATA, [local, remote], disabled)

    assert caught.value.message.startswith(f"KMS key {key_id} is Disabled, so no backup can be encrypted")
    assert "\n" not in caught.value.message
    assert backup_names(local) == [] and backup_names(remote) == []
    assert local.list_keys() == [] and remote.list_keys() == []
