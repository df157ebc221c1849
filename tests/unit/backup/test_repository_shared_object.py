"""One realtime base backup serves both realtime domains: the transactions backup shares the orders
backup's object (`write_shared_backup`), stored once, yet cataloged, verified, read and kept per domain.
Real host-directory stores and a real keyring."""

from __future__ import annotations

import io
import os
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from recovery.backup.catalog import Catalog, CatalogEntry, CopyState, CopyStatus
from recovery.backup.keys import Keyring
from recovery.backup.manifest import Manifest, SourcePosition
from recovery.backup.naming import BackupName
from recovery.backup.repository import (
    BackupMetadata,
    manifest_key,
    object_key,
    read_backup,
    read_manifest,
    write_backup,
    write_shared_backup,
)
from recovery.backup.retention import RetentionPolicy, plan_retention
from recovery.backup.stores import FilesystemStore
from recovery.errors import IntegrityError

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ORDERS = BackupName(date(2026, 11, 25), "orders", "realtime")
TRANSACTIONS = BackupName(date(2026, 11, 25), "transactions", "realtime")
PLAINTEXT = os.urandom(200_000) + b"cluster" * 50_000


class _Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


def _shared(tmp_path: Path, keyring: Keyring) -> tuple[Catalog, Manifest, Manifest]:
    stores = (
        FilesystemStore(tmp_path / "local", "local", "backups/"),
        FilesystemStore(tmp_path / "remote", "remote", "backups/"),
    )
    metadata = BackupMetadata(SourcePosition(at=T0, lsn="0/4000120"), "3", "v1", ())
    orders = write_backup(io.BytesIO(PLAINTEXT), ORDERS, metadata, stores, keyring)
    transactions = write_shared_backup(orders, TRANSACTIONS, stores, keyring)
    return Catalog(stores[0], stores[1], keyring), orders, transactions


def test_the_bytes_are_stored_once_and_read_back_for_each_domain(tmp_path: Path, keyring: Keyring) -> None:
    catalog, orders, transactions = _shared(tmp_path, keyring)
    assert transactions.shares == ORDERS.backup_id
    assert (transactions.source, transactions.sha256) == (orders.source, orders.sha256)
    for store in (catalog.local, catalog.remote):
        assert (store.head(object_key(TRANSACTIONS)) or 0) < 200  # a marker, not a second copy
        for name in (ORDERS, TRANSACTIONS):
            sink = _Collect()
            read_backup(store, name, sink, keyring)
            assert bytes(sink.data) == PLAINTEXT


def test_the_catalog_lists_and_verifies_both_domains(tmp_path: Path, keyring: Keyring) -> None:
    catalog, _, _ = _shared(tmp_path, keyring)
    assert [entry.backup_id for entry in catalog.entries()] == [ORDERS.backup_id, TRANSACTIONS.backup_id]
    for name in (ORDERS, TRANSACTIONS):
        entry = catalog.verify(name.backup_id)
        assert entry.counts, entry


def test_a_damaged_or_missing_shared_object_damages_both_domains_copy(
    tmp_path: Path, keyring: Keyring
) -> None:
    catalog, _, _ = _shared(tmp_path, keyring)
    local_object = tmp_path / "local" / "backups" / object_key(ORDERS)
    local_object.write_bytes(local_object.read_bytes()[:-1] + b"\0")
    damaged = catalog.verify(TRANSACTIONS.backup_id)
    assert damaged.local.state is CopyState.DAMAGED and damaged.remote.state is CopyState.VERIFIED
    catalog.remote.delete(object_key(ORDERS))
    gone = catalog.verify(TRANSACTIONS.backup_id)
    assert gone.remote.state is CopyState.DAMAGED
    assert "which holds its bytes, does not exist" in gone.remote.detail


def test_a_manifest_pointed_at_another_object_does_not_authenticate(tmp_path: Path, keyring: Keyring) -> None:
    catalog, _, transactions = _shared(tmp_path, keyring)
    forged = transactions.model_copy(update={"shares": "20261124-orders-realtime"})
    catalog.local.delete(manifest_key(TRANSACTIONS))
    catalog.local.put_bytes(manifest_key(TRANSACTIONS), forged.to_json())
    assert catalog.verify(TRANSACTIONS.backup_id).local.state is CopyState.DAMAGED
    with pytest.raises(IntegrityError, match="not trusted"):
        read_backup(catalog.local, TRANSACTIONS, _Collect(), keyring)


def test_a_manifest_without_shares_keeps_its_bytes_and_its_mac(tmp_path: Path, keyring: Keyring) -> None:
    """Manifests written before `shares` existed (no such key) still parse and authenticate."""
    catalog, orders, _ = _shared(tmp_path, keyring)
    assert b"shares" not in orders.to_json()
    stored = read_manifest(catalog.local, ORDERS)
    assert stored is not None and stored.authentication_problem(keyring) is None


def test_retention_keeps_a_shared_object_while_its_sharer_is_kept(tmp_path: Path, keyring: Keyring) -> None:
    _, orders, transactions = _shared(tmp_path, keyring)
    verified = CopyStatus(CopyState.VERIFIED)
    newer = BackupName(date(2026, 11, 26), "orders", "realtime")
    newer_manifest = orders.model_copy(update={"backup_id": newer.backup_id})
    entries = [
        CatalogEntry(ORDERS, verified, verified, local_manifest=orders, remote_manifest=orders),
        CatalogEntry(
            newer, verified, verified, local_manifest=newer_manifest, remote_manifest=newer_manifest
        ),
        CatalogEntry(
            TRANSACTIONS, verified, verified, local_manifest=transactions, remote_manifest=transactions
        ),
    ]
    policy = RetentionPolicy(daily=1, weekly=0)
    by_id = {decision.backup_id: decision for decision in plan_retention(entries, policy)}
    assert by_id[ORDERS.backup_id].keep
    assert (
        by_id[ORDERS.backup_id].reason
        == f"its object holds the bytes of kept backup {TRANSACTIONS.backup_id}"
    )
    without_sharer = [entry for entry in entries if entry.name != TRANSACTIONS]
    alone = {d.backup_id: d for d in plan_retention([replace(e) for e in without_sharer], policy)}
    assert not alone[ORDERS.backup_id].keep
