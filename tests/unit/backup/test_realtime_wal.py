"""WAL archive objects: names, keys, manifests, and what a realtime backup's shipped WAL covers.

Stores are real host-directory stores, keys a real keyring, objects real codec output."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from recovery.backup.keys import Keyring
from recovery.backup.manifest import SourcePosition
from recovery.backup.naming import BackupName
from recovery.backup.realtime import (
    WalRange,
    coverage,
    fetch_wal,
    parse_basebackup_log,
    seal_wal,
    store_wal,
    verified_wal_copy,
    wal_range_key,
)
from recovery.backup.repository import BackupMetadata, write_backup
from recovery.backup.stores import FilesystemStore
from recovery.backup.wal import (
    Segment,
    WalKey,
    WalManifest,
    check_restore_point_name,
    format_lsn,
    is_wal_file_name,
    parse_lsn,
    parse_wal_keys,
    series_id,
)
from recovery.errors import IntegrityError, PreconditionFailed, UsageError

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
SEGMENT = 16 * 1024 * 1024


def test_segment_names_follow_postgresql() -> None:
    assert Segment(1, 3).name() == "000000010000000000000003"
    assert Segment(2, 256).name() == "000000020000000100000000"
    assert Segment.parse("000000020000000100000000") == Segment(2, 256)
    assert Segment.containing("0/3000060", 1).name() == "000000010000000000000003"
    assert Segment.containing("1/FF000000", 1).name() == "0000000100000001000000FF"
    assert parse_lsn("0/3000060") == 0x3000060
    assert format_lsn(parse_lsn("1/A0")) == "1/A0"
    with pytest.raises(UsageError, match="not a PostgreSQL LSN"):
        parse_lsn("3000060")


def test_only_wal_file_names_are_wal_keys() -> None:
    assert is_wal_file_name("00000002.history")
    assert is_wal_file_name("000000010000000000000008.00000060.backup")
    assert not is_wal_file_name(".000000010000000000000008.partial")
    series = series_id(date(2026, 11, 25))
    assert series == "20261125-orders-realtime.wal"
    keys = [
        f"orders/{series}/000000010000000000000004",
        f"orders/{series}/000000010000000000000004.json",
        f"orders/{series}/000000010000000000000003",
        "orders/20261125-orders-realtime.bak",
        f"transactions/{series}/000000010000000000000005",
        "orders/restore-points/before.json",
    ]
    assert [key.file_name for key in parse_wal_keys(keys)] == [
        "000000010000000000000003",
        "000000010000000000000004",
    ]


def test_restore_point_names_are_checked() -> None:
    assert check_restore_point_name("before-upgrade_v2.1") == "before-upgrade_v2.1"
    for bad in ("", "-x", "a b", "x" * 64, "naïve"):
        with pytest.raises(UsageError, match="restore point name"):
            check_restore_point_name(bad)


def test_basebackup_positions_are_read_from_its_verbose_log() -> None:
    log = (
        "pg_basebackup: initiating base backup, waiting for checkpoint to complete\n"
        "pg_basebackup: checkpoint completed\n"
        "pg_basebackup: write-ahead log start point: 0/A000028 on timeline 1\n"
        "pg_basebackup: write-ahead log end point: 0/A000120\n"
        "pg_basebackup: base backup completed\n"
    )
    assert parse_basebackup_log(log) == ("0/A000028", 1, "0/A000120")


@pytest.fixture
def store(tmp_path: Path) -> FilesystemStore:
    return FilesystemStore(tmp_path / "local", "local", "backups/")


def _segment_bytes(number: int) -> bytes:
    return number.to_bytes(4, "big") * (SEGMENT // 4 // 64)  # small, distinct per segment


def _ship(store: FilesystemStore, keyring: Keyring, number: int, written_at: datetime) -> WalKey:
    name = Segment(1, number).name()
    series = series_id(written_at.date())
    store_wal(store, seal_wal(series, name, _segment_bytes(number), written_at, keyring))
    return WalKey(series, name)


def _base(store: FilesystemStore, keyring: Keyring, end_lsn: str) -> BackupName:
    name = BackupName(date(2026, 11, 25), "orders", "realtime")
    metadata = BackupMetadata(SourcePosition(at=T0, lsn=end_lsn), "3", "v1", ())
    write_backup(io.BytesIO(b"tar bytes"), name, metadata, [store], keyring)
    wal_range = WalRange(
        backup_id=name.backup_id,
        timeline=1,
        start_lsn="0/4000028",
        end_lsn=end_lsn,
        started_at=T0 - timedelta(seconds=2),
        ended_at=T0,
    )
    store.put_bytes(wal_range_key(name), wal_range.to_json())
    return name


def test_coverage_runs_from_the_base_backup_to_the_last_unbroken_segment(
    store: FilesystemStore, keyring: Keyring
) -> None:
    name = _base(store, keyring, "0/4000120")
    _ship(store, keyring, 3, T0 - timedelta(seconds=30))  # before the backup: not needed
    for number, seconds in ((4, 5), (5, 10), (6, 15), (8, 25)):  # 7 is missing: 8 is unreachable
        _ship(store, keyring, number, T0 + timedelta(seconds=seconds))
    covered = coverage(store, name)
    assert covered.starts_at == T0
    assert covered.ends_at == T0 + timedelta(seconds=15)
    assert [key.file_name for key in covered.segments] == [Segment(1, n).name() for n in (4, 5, 6)]
    assert [key.file_name for key in covered.segments_until(T0 + timedelta(seconds=7))] == [
        Segment(1, 4).name(),
        Segment(1, 5).name(),
    ]
    with pytest.raises(UsageError, match="not in the shipped WAL"):
        covered.segments_through(Segment(1, 8).name())


def test_a_shipped_segment_decrypts_to_its_bytes_and_a_tampered_one_is_refused(
    store: FilesystemStore, keyring: Keyring
) -> None:
    key = _ship(store, keyring, 4, T0)
    out = io.BytesIO()
    manifest = fetch_wal(store, key, out, keyring)
    assert out.getvalue() == _segment_bytes(4)
    assert manifest.file_name == key.file_name
    path = store.root / "backups" / key.object_key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert verified_wal_copy(store, key.series, key.file_name) is None
    with pytest.raises(IntegrityError):
        fetch_wal(store, key, io.BytesIO(), keyring)


def test_a_segment_cannot_be_passed_off_as_another(store: FilesystemStore, keyring: Keyring) -> None:
    four, five = _ship(store, keyring, 4, T0), _ship(store, keyring, 5, T0)
    root = store.root / "backups"
    (root / four.object_key).write_bytes((root / five.object_key).read_bytes())
    (root / four.manifest_key).write_bytes((root / five.manifest_key).read_bytes())
    with pytest.raises(IntegrityError, match="another WAL file"):
        fetch_wal(store, four, io.BytesIO(), keyring)


def test_shipping_twice_keeps_the_first_copy(store: FilesystemStore, keyring: Keyring) -> None:
    key = _ship(store, keyring, 4, T0)
    first = verified_wal_copy(store, key.series, key.file_name)
    assert first is not None
    with pytest.raises(PreconditionFailed, match="already exists"):
        _ship(store, keyring, 4, T0)
    assert verified_wal_copy(store, key.series, key.file_name) == first


def test_a_damaged_wal_manifest_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="WAL manifest x is damaged"):
        WalManifest.from_json(b'{"manifest_format": 1}', "x")
