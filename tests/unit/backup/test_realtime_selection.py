"""Selection with realtime coverage: a realtime backup reaches any time up to the end of its shipped
WAL, filled into the catalog by `with_coverage` from real host-directory stores."""

from __future__ import annotations

import io
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from recovery.backup.catalog import Catalog
from recovery.backup.keys import Keyring, write_keyring
from recovery.backup.manifest import SourcePosition
from recovery.backup.naming import BackupName
from recovery.backup.realtime import (
    RealtimeStores,
    WalRange,
    seal_wal,
    store_wal,
    wal_range_key,
    with_coverage,
)
from recovery.backup.repository import BackupMetadata, write_backup
from recovery.backup.stores import FilesystemStore
from recovery.backup.wal import (
    RestorePoint,
    Segment,
    restore_point_key,
    series_id,
    wal_manifest_key,
    wal_object_key,
)
from recovery.restore.pitr import choose_for_restore_point
from recovery.restore.selection import DomainChoice, DomainRefusal, select_backups
from recovery.targets.model import Objectives

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _stores(tmp_path: Path) -> RealtimeStores:
    path = tmp_path / "keyring.json"
    write_keyring(path, {"kek": os.urandom(32)}, active="kek")
    return RealtimeStores(
        FilesystemStore(tmp_path / "local", "local", "backups/"),
        FilesystemStore(tmp_path / "remote", "remote", "backups/"),
        Keyring.load(path),
    )


def _realtime_backup(stores: RealtimeStores) -> tuple[BackupName, WalRange]:
    """A realtime orders backup at T0 in both copies, and the WAL range its base backup spans."""
    name = BackupName(date(2026, 11, 25), "orders", "realtime")
    metadata = BackupMetadata(SourcePosition(at=T0, lsn="0/4000120"), "3", "v1", ())
    write_backup(io.BytesIO(b"base"), name, metadata, stores.both, stores.keys)
    wal_range = WalRange(
        backup_id=name.backup_id,
        timeline=1,
        start_lsn="0/4000028",
        end_lsn="0/4000120",
        started_at=T0,
        ended_at=T0,
    )
    return name, wal_range


def test_a_realtime_backup_reaches_the_end_of_its_shipped_wal(tmp_path: Path) -> None:
    stores = _stores(tmp_path)
    name, wal_range = _realtime_backup(stores)
    late = T0 + timedelta(minutes=30)
    for store in stores.both:
        store.put_bytes(wal_range_key(name), wal_range.to_json())
        for number, written in ((4, T0 + timedelta(minutes=10)), (5, late)):
            file_name = Segment(1, number).name()
            store_wal(
                store, seal_wal(series_id(written.date()), file_name, b"wal" * 100, written, stores.keys)
            )
    catalog = Catalog(stores.local, stores.remote, stores.keys)
    entries = [catalog.verify(entry.backup_id) for entry in catalog.entries()]
    objectives = Objectives(realtime_backup_max_age_seconds=120)
    wanted = T0 + timedelta(minutes=20)
    without = select_backups(entries, ["orders"], at=wanted, objectives=objectives)
    assert without.refused, "without its WAL the backup reaches only two minutes"
    filled = with_coverage(entries, stores)
    assert filled[0].covered_until == late
    chosen = select_backups(filled, ["orders"], at=wanted, objectives=objectives).choice("orders")
    assert chosen is not None and chosen.backup_id == name.backup_id and chosen.copy == "local"
    beyond = select_backups(filled, ["orders"], at=late + timedelta(minutes=5), objectives=objectives)
    assert beyond.refused


def test_a_realtime_restore_point_is_found_through_the_wal_that_holds_it(tmp_path: Path) -> None:
    stores = _stores(tmp_path)
    name, wal_range = _realtime_backup(stores)
    point = RestorePoint(
        name="before-d",
        lsn="0/5000100",
        timeline=1,
        created_at=T0 + timedelta(minutes=1),
        segment=Segment(1, 5).name(),
    )
    for store in stores.both:
        store.put_bytes(wal_range_key(name), wal_range.to_json())
        store.put_bytes(restore_point_key("before-d"), point.to_json())
        for number in (4, 5):
            written = T0 + timedelta(minutes=number - 3)
            file_name = Segment(1, number).name()
            store_wal(
                store, seal_wal(series_id(written.date()), file_name, b"wal" * 100, written, stores.keys)
            )
    catalog = Catalog(stores.local, stores.remote, stores.keys)
    entries = [catalog.verify(entry.backup_id) for entry in catalog.entries()]
    chosen = choose_for_restore_point(entries, "orders", "before-d", stores)
    assert isinstance(chosen, DomainChoice), chosen
    assert (chosen.backup_id, chosen.copy) == (name.backup_id, "local")
    assert "reaches restore point 'before-d' through the WAL shipped to its local copy" in chosen.reason
    missing = choose_for_restore_point(entries, "orders", "never", stores)
    assert isinstance(missing, DomainRefusal) and "no realtime restore point named 'never'" in missing.reason
    stores.local.delete(wal_object_key(series_id(T0.date()), Segment(1, 5).name()))
    stores.local.delete(wal_manifest_key(series_id(T0.date()), Segment(1, 5).name()))
    remote = choose_for_restore_point(entries, "orders", "before-d", stores)
    assert isinstance(remote, DomainChoice) and remote.copy == "remote", "the copy that holds the WAL"
    stores.remote.delete(wal_object_key(series_id(T0.date()), Segment(1, 5).name()))
    neither = choose_for_restore_point(entries, "orders", "before-d", stores)
    assert isinstance(neither, DomainRefusal) and "(remote copy)" in neither.reason
