"""Point-in-time recovery decisions (pure): what to fetch, which settings, the scratch pgpass line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

import pytest

from recovery.backup.realtime import Coverage, WalRange
from recovery.backup.wal import Segment, WalKey
from recovery.errors import UsageError
from recovery.restore.pitr import (
    UNTRUSTED_FILES,
    next_segments,
    plan_recovery,
    recovery_limits,
    recovery_settings,
    scratch_config,
    scratch_pgpass_line,
)
from recovery.targets.model import Database

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
SERIES = "20261125-orders-realtime.wal"


def _coverage() -> Coverage:
    wal_range = WalRange(
        backup_id="20261125-orders-realtime",
        timeline=1,
        start_lsn="0/4000028",
        end_lsn="0/4000120",
        started_at=T0 - timedelta(seconds=2),
        ended_at=T0,
    )
    keys = tuple(WalKey(SERIES, Segment(1, n).name()) for n in (4, 5, 6))
    written = tuple(T0 + timedelta(seconds=s) for s in (5, 10, 15))
    return Coverage("20261125-orders-realtime", T0, T0 + timedelta(seconds=15), wal_range, keys, written)


def test_a_time_in_range_fetches_up_to_the_segment_that_holds_it() -> None:
    plan = plan_recovery(_coverage(), at=T0 + timedelta(seconds=6), restore_point_segment=None, name=None)
    assert [key.file_name for key in plan.segments] == [Segment(1, 4).name(), Segment(1, 5).name()]
    assert dict(plan.settings)["recovery_target_time"] == "2026-11-25T10:00:06.000000+00"


@pytest.mark.parametrize("offset", [timedelta(seconds=-1), timedelta(seconds=16)])
def test_a_time_outside_the_range_is_refused_in_one_line(offset: timedelta) -> None:
    with pytest.raises(UsageError) as caught:
        plan_recovery(_coverage(), at=T0 + offset, restore_point_segment=None, name=None)
    message = str(caught.value)
    assert "is outside what realtime backup 20261125-orders-realtime covers" in message
    assert "2026-11-25T10:00:00.000000Z to 2026-11-25T10:00:15.000000Z" in message
    assert "\n" not in message


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(UsageError, match="time zone"):
        plan_recovery(_coverage(), at=datetime(2026, 11, 25, 10, 0, 5), restore_point_segment=None, name=None)


def test_a_restore_point_fetches_through_its_segment() -> None:
    plan = plan_recovery(_coverage(), at=None, restore_point_segment=Segment(1, 5).name(), name="before-d")
    assert len(plan.segments) == 2
    assert plan.settings == (("recovery_target_name", "before-d"),)


def test_the_scratch_server_never_archives_and_recovers_from_its_own_directory() -> None:
    plan = plan_recovery(_coverage(), at=None, restore_point_segment=Segment(1, 4).name(), name="it's")
    text = recovery_settings(plan, address="127.0.0.11", port=43532, scratch=PurePosixPath("/srv/pitr-x"))
    lines = text.splitlines()
    assert "archive_mode = off" in lines
    assert "port = 43532" in lines
    assert "restore_command = 'cp /srv/pitr-x/wal/%f %p'" in lines
    assert "recovery_target_action = 'promote'" in lines
    assert "recovery_target_name = 'it''s'" in lines
    assert "unix_socket_directories = '/srv/pitr-x/run'" in lines


def test_the_scratch_pgpass_line_moves_the_live_entry_to_the_new_port() -> None:
    database = Database(address="127.0.0.11", port=43432, user="postgres", passfile=Path("/x"))
    text = (
        "127.0.0.12:43432:*:postgres:other\n"
        "127.0.0.11:43432:*:orders:o\n"
        "127.0.0.11:43432:*:postgres:p\\:w\\\\d\n"
    )
    assert scratch_pgpass_line(text, database, 43532) == "127.0.0.11:43532:*:postgres:p\\:w\\\\d\n"
    with pytest.raises(UsageError, match=r"no entry for postgres at 127\.0\.0\.11:43432"):
        scratch_pgpass_line("127.0.0.11:43432:*:orders:o\n", database, 43532)


def test_more_segments_are_the_shipped_ones_after_those_given() -> None:
    cov = _coverage()
    given = plan_recovery(cov, at=T0 + timedelta(seconds=3), restore_point_segment=None, name=None).segments
    assert [key.file_name for key in given] == [Segment(1, 4).name()]
    assert [key.file_name for key in next_segments(cov, given, 1)] == [Segment(1, 5).name()]
    assert [key.file_name for key in next_segments(cov, given)] == [
        Segment(1, 5).name(),
        Segment(1, 6).name(),
    ]
    assert next_segments(cov, cov.segments) == ()  # nothing left: the server recovers to the end


# The scratch server's configuration is the toolkit's own: nothing of the restored data's is kept.

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
        plan_recovery(_coverage(), at=None, restore_point_segment=None, name=None),
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
