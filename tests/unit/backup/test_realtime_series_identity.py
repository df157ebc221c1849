"""WAL series are keyed by the cluster's system identifier: a cluster made anew by initdb on the same
day restarts its segment names, and its WAL must never extend the old cluster's backups (nor the
reverse)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from recovery.backup.keys import Keyring
from recovery.backup.manifest import SourcePosition
from recovery.backup.naming import BackupName
from recovery.backup.realtime import WalRange, coverage, seal_wal, store_wal, wal_range_key
from recovery.backup.repository import BackupMetadata, write_backup
from recovery.backup.stores import FilesystemStore
from recovery.backup.wal import Segment, segment_system_identifier, series_id, series_system

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
OLD, NEW = "7441234567890123456", "7449999999999999999"


def _segment(system: str, number: int) -> bytes:
    """A segment's first page: magic, XLP_LONG_HEADER, timeline 1, page address, then the system id."""
    header = (0xD118).to_bytes(2, "little") + (0x0002).to_bytes(2, "little") + (1).to_bytes(4, "little")
    header += (number * 16 * 1024 * 1024).to_bytes(8, "little") + bytes(8)
    return header + int(system).to_bytes(8, "little") + bytes(64)


def _ship(store: FilesystemStore, keyring: Keyring, system: str, number: int, seconds: int) -> None:
    raw = _segment(system, number)
    series = series_id(T0.date(), segment_system_identifier(raw))
    store_wal(
        store, seal_wal(series, Segment(1, number).name(), raw, T0 + timedelta(seconds=seconds), keyring)
    )


def _base(store: FilesystemStore, keyring: Keyring, system: str, seq: int) -> BackupName:
    name = BackupName(date(2026, 11, 25), "orders", "realtime", seq)
    metadata = BackupMetadata(SourcePosition(at=T0, lsn="0/1000120"), "3", "v1", ())
    write_backup(io.BytesIO(b"tar bytes"), name, metadata, [store], keyring)
    wal_range = WalRange(
        backup_id=name.backup_id,
        timeline=1,
        start_lsn="0/1000028",
        end_lsn="0/1000120",
        started_at=T0 - timedelta(seconds=2),
        ended_at=T0,
        system_identifier=system,
    )
    store.put_bytes(wal_range_key(name), wal_range.to_json())
    return name


def test_the_series_carries_the_clusters_identity() -> None:
    assert segment_system_identifier(_segment(OLD, 1)) == OLD
    assert series_id(T0.date(), OLD) == f"20261125-orders-realtime.{OLD}.wal"
    assert series_system(series_id(T0.date(), OLD)) == OLD
    assert series_system(series_id(T0.date())) is None
    assert segment_system_identifier(b"\x00" * 40) is None  # no long header: not a segment's first page


def test_two_clusters_of_one_day_never_share_coverage(tmp_path: Path, keyring: Keyring) -> None:
    store = FilesystemStore(tmp_path / "local", "local")
    old_backup = _base(store, keyring, OLD, 1)
    for number in (1, 2, 3, 4):
        _ship(store, keyring, OLD, number, number * 10)
    new_backup = _base(store, keyring, NEW, 2)  # initdb again the same day: names restart at 1
    for number in (1, 2):
        _ship(store, keyring, NEW, number, 100 + number)
    old, new = coverage(store, old_backup), coverage(store, new_backup)
    assert [key.series for key in old.segments] == [series_id(T0.date(), OLD)] * 4
    assert [key.series for key in new.segments] == [series_id(T0.date(), NEW)] * 2
    assert new.ends_at == T0 + timedelta(seconds=102) and old.ends_at == T0 + timedelta(seconds=40)
