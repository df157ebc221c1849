"""The scratch server's configuration is the toolkit's own: nothing of the restored data's is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import PurePosixPath

from recovery.backup.realtime import Coverage, WalRange
from recovery.backup.wal import Segment, WalKey
from recovery.restore.pitr import UNTRUSTED_FILES, plan_recovery, recovery_limits, scratch_config

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

CONTROLDATA = """pg_control version number:            1300
Database system identifier:           7441234567890123456
wal_level setting:                    replica
max_connections setting:              250
max_worker_processes setting:         8
max_wal_senders setting:              10
max_prepared_xacts setting:           0
max_locks_per_xact setting:           64
track_commit_timestamp setting:       off
max_connections setting:              99999999999; shared_preload_libraries = 'evil'
"""


def _plan() -> object:
    wal_range = WalRange(
        backup_id="20261125-orders-realtime",
        timeline=1,
        start_lsn="0/4000028",
        end_lsn="0/4000120",
        started_at=T0 - timedelta(seconds=2),
        ended_at=T0,
    )
    keys = (WalKey("20261125-orders-realtime.wal", Segment(1, 4).name()),)
    cov = Coverage(wal_range.backup_id, T0, T0 + timedelta(seconds=5), wal_range, keys, (T0,))
    return plan_recovery(cov, at=None, restore_point_segment=None, name=None)


def test_only_bounded_numbers_come_from_the_control_file() -> None:
    assert recovery_limits(CONTROLDATA) == (
        ("max_connections", 250),
        ("max_locks_per_transaction", 64),
        ("max_prepared_transactions", 0),
        ("max_wal_senders", 10),
        ("max_worker_processes", 8),
    )


def test_the_configuration_is_written_whole_by_the_toolkit() -> None:
    text = scratch_config(
        _plan(),  # type: ignore[arg-type]
        address="127.0.0.11",
        port=43532,
        scratch=PurePosixPath("/srv/pitr-x"),
        limits=recovery_limits(CONTROLDATA),
    )
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    names = {line.split(" = ", 1)[0] for line in lines}
    assert "max_connections = 250" in lines and "archive_mode = off" in lines
    assert not names & {"shared_preload_libraries", "include", "include_dir", "include_if_exists"}
    assert not any(line.startswith("include") for line in lines)


def test_every_file_that_configures_or_names_a_server_is_replaced() -> None:
    assert {"postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "postmaster.pid"} <= set(
        UNTRUSTED_FILES
    )
