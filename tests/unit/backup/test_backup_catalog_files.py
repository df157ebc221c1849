"""Backups written to two host-directory stores with an offline keyring: catalog, verify, damage, delete."""

from __future__ import annotations

import io
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from raw_checker import line_checker, summarise

from recovery.backup.catalog import Catalog, CopyState
from recovery.backup.keys import Keyring, write_keyring
from recovery.backup.manifest import Manifest, SourcePosition
from recovery.backup.naming import BackupName
from recovery.backup.repository import BackupMetadata, next_backup_name, read_backup, write_backup
from recovery.backup.stores import FilesystemStore
from recovery.errors import IntegrityError, PreconditionFailed

DAY = date(2026, 11, 25)
Stores = tuple[FilesystemStore, FilesystemStore]
AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def dump(rows: int) -> bytes:
    orders = b"".join(b"orders\t%d\tpaid\t%d\n" % (i, i * 7) for i in range(rows))
    items = b"".join(b"order_items\t%d\t1\t%d\n" % (i, i * 7) for i in range(rows))
    return orders + items


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    path = tmp_path / "keyring.json"
    write_keyring(path, {"kek-2026": os.urandom(32), "kek-2025": os.urandom(32)}, active="kek-2026")
    return Keyring.load(path)


@pytest.fixture
def stores(tmp_path: Path) -> Stores:
    return FilesystemStore(tmp_path / "local", "local", "backups/"), FilesystemStore(
        tmp_path / "remote", "remote"
    )


def backup(
    stores: tuple[FilesystemStore, FilesystemStore], keyring: Keyring, data: bytes, seq: int = 1
) -> Manifest:
    name = BackupName(DAY, "orders", "daily", seq)
    metadata = BackupMetadata(
        source=SourcePosition(at=AT, lsn="0/3000060"),
        schema_version="1",
        service_version="1.0.0",
        tables=summarise(data),
    )
    return write_backup(io.BytesIO(data), name, metadata, stores, keyring, chunk_size=64 * 1024)


def test_backup_lands_in_both_copies_with_a_manifest(stores: Stores, keyring: Keyring) -> None:
    data = dump(20_000)
    manifest = backup(stores, keyring, data)
    local, remote = stores
    assert (local.root / "backups/orders/20261125-orders-daily.bak").is_file()
    assert (remote.root / "orders/20261125-orders-daily.bak.manifest.json").is_file()
    assert manifest.sizes.raw == len(data) and manifest.key.key_id == "kek-2026"
    assert manifest.sizes.stored == (local.root / "backups/orders/20261125-orders-daily.bak").stat().st_size
    assert [table.name for table in manifest.tables] == ["order_items", "orders"]
    assert b"paid" not in (local.root / "backups/orders/20261125-orders-daily.bak").read_bytes()
    stored_manifest = Manifest.from_json(
        local.get_bytes("orders/20261125-orders-daily.bak.manifest.json") or b"", "x"
    )
    assert stored_manifest == manifest
    out = io.BytesIO()
    read_backup(remote, manifest.name, out, keyring)
    assert out.getvalue() == data


def test_same_day_backup_gets_next_name_and_overwrite_refused(stores: Stores, keyring: Keyring) -> None:
    backup(stores, keyring, dump(10))
    assert next_backup_name(stores, DAY, "orders", "daily").file_name == "20261125-orders-daily-2.bak"
    with pytest.raises(PreconditionFailed, match="never overwritten"):
        backup(stores, keyring, dump(11))
    assert not list(stores[0].root.rglob("*.partial"))


def test_catalog_lists_and_verifies_both_copies_shallow_and_deep(stores: Stores, keyring: Keyring) -> None:
    backup(stores, keyring, dump(5_000))
    backup(stores, keyring, dump(6_000), seq=2)
    catalog = Catalog(*stores, keys=keyring)
    listed = catalog.entries()
    assert [entry.backup_id for entry in listed] == ["20261125-orders-daily", "20261125-orders-daily-2"]
    assert all(entry.local.state is CopyState.PRESENT and not entry.counts for entry in listed)
    shallow = catalog.verify("20261125-orders-daily")
    assert shallow.counts and shallow.remote.detail == "sha256 matches the manifest"
    deep = catalog.verify("20261125-orders-daily-2", deep=True, checker=line_checker)
    assert deep.counts and "table contents match" in deep.local.detail


def test_tampered_and_missing_copies_are_reported_per_copy(stores: Stores, keyring: Keyring) -> None:
    backup(stores, keyring, dump(5_000))
    local, remote = stores
    path = local.root / "backups/orders/20261125-orders-daily.bak"
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    path.write_bytes(bytes(damaged))
    (remote.root / "orders/20261125-orders-daily.bak").unlink()
    catalog = Catalog(local, remote, keys=keyring)
    entry = catalog.verify("20261125-orders-daily")
    assert entry.local.state is CopyState.DAMAGED and "does not match the sha256" in entry.local.detail
    assert entry.remote.state is CopyState.MISSING and not entry.counts
    deep = catalog.verify("20261125-orders-daily", deep=True, checker=line_checker)
    assert deep.local.state is CopyState.DAMAGED and "failed authentication" in deep.local.detail


def test_deep_verify_catches_a_manifest_whose_tables_disagree(stores: Stores, keyring: Keyring) -> None:
    data = dump(1_000)
    name = BackupName(DAY, "orders", "daily")
    wrong = summarise(dump(999))
    metadata = BackupMetadata(SourcePosition(at=AT), "1", "1.0.0", wrong)
    write_backup(io.BytesIO(data), name, metadata, stores, keyring, chunk_size=64 * 1024)
    entry = Catalog(*stores, keys=keyring).verify(name.backup_id, deep=True, checker=line_checker)
    assert entry.local.state is CopyState.DAMAGED
    assert "table order_items has 1000 rows, the manifest says 999" in entry.local.detail


def test_damaged_manifest_marks_the_copy_damaged(stores: Stores, keyring: Keyring) -> None:
    backup(stores, keyring, dump(100))
    (stores[1].root / "orders/20261125-orders-daily.bak.manifest.json").write_text("{not json")
    entry = Catalog(*stores, keys=keyring).verify("20261125-orders-daily")
    assert entry.remote.state is CopyState.DAMAGED and "manifest" in entry.remote.detail
    assert entry.local.state is CopyState.VERIFIED


def test_a_different_keyring_cannot_read_the_backup(stores: Stores, keyring: Keyring, tmp_path: Path) -> None:
    manifest = backup(stores, keyring, dump(100))
    stranger_path = tmp_path / "other.json"
    write_keyring(stranger_path, {"kek-2026": os.urandom(32)}, active="kek-2026")
    with pytest.raises(IntegrityError, match="not trusted: its authentication code does not match"):
        read_backup(stores[0], manifest.name, io.BytesIO(), Keyring.load(stranger_path))


def test_read_backup_refuses_an_object_swapped_under_another_name(stores: Stores, keyring: Keyring) -> None:
    backup(stores, keyring, dump(100))
    backup(stores, keyring, dump(200), seq=2)
    local = stores[0]
    first = local.root / "backups/orders/20261125-orders-daily.bak"
    second = local.root / "backups/orders/20261125-orders-daily-2.bak"
    first.write_bytes(second.read_bytes())
    sink = io.BytesIO()
    with pytest.raises(IntegrityError):
        read_backup(local, BackupName.parse("20261125-orders-daily"), sink, keyring)
    assert sink.getvalue() == b""


def test_delete_removes_both_copies(stores: Stores, keyring: Keyring) -> None:
    backup(stores, keyring, dump(100))
    catalog = Catalog(*stores, keys=keyring)
    catalog.delete("20261125-orders-daily")
    assert catalog.entries() == []
    assert stores[0].list_keys() == [] and stores[1].list_keys() == []
