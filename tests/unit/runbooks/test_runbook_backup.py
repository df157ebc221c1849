"""The backup runbooks' parameters and step lists (the object layout: tests/unit/backup)."""

from __future__ import annotations

from pathlib import Path

import pytest
from target_files import unit_target as target

from recovery.backup.daily import host_log_file
from recovery.backup.prune import PrunePlan
from recovery.backup.retention import RetentionDecision, RetentionPolicy, WalSeriesDecision
from recovery.errors import UsageError
from recovery.runbooks.backup import backup_params, backup_runbook, prune_params, prune_runbook


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
