"""The pure parts of the backup runbook: the sectioned object layout, parameters and the step list."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from target_files import unit_target as target

from recovery.backup.daily import host_log_file
from recovery.backup.prune import PrunePlan
from recovery.backup.retention import RetentionDecision, RetentionPolicy, WalSeriesDecision
from recovery.backup.sections import DUMP, MAGIC, SCHEMA, Collect, Part, SectionSource, SectionSplitter, frame
from recovery.errors import IntegrityError, UsageError
from recovery.runbooks.backup import backup_params, backup_runbook, prune_params, prune_runbook


def read_all(source: SectionSource, size: int) -> bytes:
    out = bytearray()
    while chunk := source.read(size):
        out += chunk
    return bytes(out)


def split(data: bytes, step: int) -> tuple[dict[str, bytes], SectionSplitter]:
    sinks: dict[str, Collect] = {}

    def route(name: str, size: int | None) -> Collect:
        return sinks.setdefault(name, Collect())

    splitter = SectionSplitter(route)
    for start in range(0, len(data), step):
        splitter.write(data[start : start + step])
    return {name: bytes(sink.data) for name, sink in sinks.items()}, splitter


def sample() -> SectionSource:
    return SectionSource(
        [
            Part(SCHEMA, 5, b"ddl!!"),
            Part("file:primary-app", 0, b""),
            Part("file:standby-app", 3, io.BytesIO(b"log")),
            Part(DUMP, None, io.BytesIO(bytes(range(256)) * 1000)),
        ]
    )


@pytest.mark.parametrize("read_size,write_size", [(1, 7), (7, 1), (4096, 3), (1 << 20, 1 << 20)])
def test_sections_round_trip_whatever_the_chunking(read_size: int, write_size: int) -> None:
    data = read_all(sample(), read_size)
    assert data.startswith(MAGIC)
    parts, splitter = split(data, write_size)
    splitter.finish()
    assert parts == {
        SCHEMA: b"ddl!!",
        "file:primary-app": b"",
        "file:standby-app": b"log",
        DUMP: bytes(range(256)) * 1000,
    }
    assert [name for name, _ in splitter.sections] == [SCHEMA, "file:primary-app", "file:standby-app", DUMP]


def test_a_route_returning_none_drops_that_section() -> None:
    data = read_all(sample(), 4096)
    kept = Collect()
    splitter = SectionSplitter(lambda name, size: kept if name == DUMP else None)
    splitter.write(data)
    splitter.finish()
    assert bytes(kept.data) == bytes(range(256)) * 1000


def test_content_cut_inside_a_sized_section_is_truncated() -> None:
    data = read_all(SectionSource([Part(SCHEMA, 10, b"0123456789"), Part(DUMP, None, b"x")]), 4096)
    _, splitter = split(data[: len(MAGIC) + len(frame(SCHEMA, 10)) + 4], 3)
    with pytest.raises(IntegrityError, match="truncated"):
        splitter.finish()


def test_foreign_content_is_refused() -> None:
    splitter = SectionSplitter(lambda name, size: None)
    with pytest.raises(IntegrityError, match="section marker"):
        splitter.write(b"PGDMP\x01\x0e\x00 not ours")


def test_a_file_that_delivers_fewer_bytes_than_announced_fails_the_stream() -> None:
    source = SectionSource([Part("file:primary-app", 10, io.BytesIO(b"short")), Part(DUMP, None, b"")])
    with pytest.raises(IntegrityError, match="delivered 5 bytes, not the 10"):
        read_all(source, 4096)


def test_only_the_last_section_may_run_to_the_end() -> None:
    with pytest.raises(ValueError, match="only the last"):
        SectionSource([Part(DUMP, None, b""), Part(SCHEMA, 0, b"")])


def test_backup_params_default_to_every_domain_and_check_point_names() -> None:
    assert backup_params([])["domains"] == ["orders", "users", "products", "transactions", "logs"]
    assert backup_params(["orders", "orders"], "before-v2") == {
        "domains": ["orders"],
        "restore_point": "before-v2",
    }
    with pytest.raises(UsageError, match="restore point name"):
        backup_params(["orders"], "bad name; drop")


def test_the_log_steps_run_only_with_the_logs_domain(tmp_path: Path) -> None:
    site = target(tmp_path)
    without = backup_runbook(site, backup_params(["orders"]))
    assert [step.name for step in without.steps] == ["check-database", "back-up", "verify-copies"]
    with_logs = backup_runbook(site, backup_params(["logs"]))
    assert [step.name for step in with_logs.steps] == [
        "check-database",
        "gather-logs",
        "back-up",
        "verify-copies",
        "clean-host-files",
    ]
    assert not with_logs.steps[0].mutating and with_logs.steps[1].acts_on == ("primary-app", "standby-app")


def test_host_log_files_live_under_the_hosts_shared_dir(tmp_path: Path) -> None:
    host = target(tmp_path).primary.hosts[0]
    path = host_log_file(host, "20261125T221500Z-backup-3f2a")
    assert str(path) == f"{tmp_path}/primary/shared/backup/logs-20261125T221500Z-backup-3f2a.tar"


def test_prune_asks_first_names_what_it_deletes_and_checks_after(tmp_path: Path) -> None:
    plan = PrunePlan(
        backups=(
            RetentionDecision(
                "20261120-orders-realtime", False, "a newer verified backup of 2026-11-20 is kept"
            ),
            RetentionDecision("20261125-orders-realtime", True, "the newest"),
        ),
        wal_series=(
            WalSeriesDecision("20261119-orders-realtime.wal", False, "older than the oldest kept"),
            WalSeriesDecision("20261125-orders-realtime.wal", True, "may hold WAL"),
        ),
    )
    params = prune_params(RetentionPolicy(daily=1, weekly=0), plan)
    assert params == {
        "keep_daily": 1,
        "keep_weekly": 0,
        "backups": ["20261120-orders-realtime"],
        "wal_series": ["20261119-orders-realtime.wal"],
    }
    runbook = prune_runbook(target(tmp_path), params)
    assert runbook.confirm == "deleting 1 backups and 1 WAL series from both copies"
    assert [(step.name, step.mutating) for step in runbook.steps] == [
        ("decide", False),
        ("delete-backups", True),
        ("delete-wal-series", True),
        ("check-after", False),
    ]
