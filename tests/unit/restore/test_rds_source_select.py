"""The selection on RDS (pure): an RDS restore first, local before remote, the daily backup otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recovery.errors import UsageError
from recovery.restore.rds_source import (
    PointSnapshot,
    RdsRestore,
    RdsRestores,
    RestoreWindow,
    point_snapshot_id,
    rds_cut,
    select_on_rds,
)
from recovery.restore.selection import DomainChoice, DomainRefusal, Selection

NOW = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
LOCAL = RestoreWindow(
    "local", "eu-west-1", "order-recovery-primary", NOW - timedelta(days=7), NOW - timedelta(minutes=4)
)
REMOTE = RestoreWindow(
    "remote", "us-west-2", "order-recovery-primary", NOW - timedelta(days=14), NOW - timedelta(minutes=9),
    backup_arn="arn:aws:rds:us-west-2:123456789012:auto-backup:ab-1",
)  # fmt: skip
DAILY = Selection(
    (
        DomainChoice(
            "orders", "20261206-orders-daily", "daily", "local", "using daily backup 20261206-orders-daily"
        ),
        DomainChoice(
            "users", "20261206-users-daily", "daily", "local", "users has only daily backups; using it"
        ),
    ),
    (),
)


def _one(selection: Selection, domain: str = "orders") -> DomainChoice:
    found = selection.choice(domain)  # type: ignore[arg-type]
    assert found is not None, selection
    return found


def test_without_a_time_the_latest_restorable_time_of_the_local_instance() -> None:
    chosen = _one(select_on_rds(RdsRestores((REMOTE, LOCAL)), ["orders"], at=None, point=None, daily=DAILY))
    # The latest restorable time seen now is the time restored to: the cut is known before the restore.
    assert (chosen.kind, chosen.copy) == ("realtime", "local")
    assert chosen.backup_id == f"rds-pitr:local:{LOCAL.latest.isoformat()}"
    assert rds_cut(chosen).at == LOCAL.latest
    assert chosen.reason == (
        "RDS point-in-time recovery of order-recovery-primary to its latest restorable time "
        "(2026-12-06T22:56:00Z), from the local copy"
    )


def test_a_time_inside_the_local_window_is_recovered_there() -> None:
    at = NOW - timedelta(hours=3)
    chosen = _one(select_on_rds(RdsRestores((LOCAL, REMOTE)), ["orders"], at=at, point=None, daily=DAILY))
    assert chosen.backup_id == f"rds-pitr:local:{at.isoformat()}"
    assert RdsRestore.parse(chosen.backup_id) == RdsRestore("pitr", "local", at.isoformat())


def test_a_time_only_the_replicated_backups_reach_uses_the_remote_copy_and_says_why() -> None:
    at = NOW - timedelta(days=10)
    chosen = _one(select_on_rds(RdsRestores((LOCAL, REMOTE)), ["orders"], at=at, point=None, daily=DAILY))
    assert (chosen.kind, chosen.copy) == ("realtime", "remote")
    local = "its window (2026-11-29T23:00:00Z to 2026-12-06T22:56:00Z)"
    assert f"from the remote copy because {local} does not reach" in chosen.reason


def test_a_time_no_window_reaches_falls_back_to_the_daily_backup_with_both_reasons() -> None:
    at = NOW - timedelta(days=20)
    chosen = _one(select_on_rds(RdsRestores((LOCAL, REMOTE)), ["orders"], at=at, point=None, daily=DAILY))
    assert (chosen.kind, chosen.backup_id) == ("daily", "20261206-orders-daily")
    assert chosen.reason.startswith("no RDS point-in-time recovery reaches 2026-11-16T23:00:00Z (local ")
    assert chosen.reason.endswith("; so using daily backup 20261206-orders-daily")


def test_domains_without_a_realtime_kind_keep_their_daily_choice() -> None:
    selection = select_on_rds(RdsRestores((LOCAL,)), ["orders", "users"], at=None, point=None, daily=DAILY)
    assert _one(selection, "users") == DAILY.choices[1]
    assert _one(selection).kind == "realtime"


def test_no_window_and_no_daily_backup_is_a_refusal_saying_both() -> None:
    daily = Selection((), (DomainRefusal("orders", "no backup of orders exists in either copy"),))
    selection = select_on_rds(
        RdsRestores((), problems=("x keeps no automated backups",)),
        ["orders"],
        at=None,
        point=None,
        daily=daily,
    )
    assert selection.refused and not selection.choices
    assert selection.refusals[0].reason == (
        "no RDS point-in-time recovery is available (x keeps no automated backups); "
        "no backup of orders exists in either copy"
    )


def test_a_restore_point_is_the_snapshot_that_carries_it_local_first() -> None:
    snapshot = point_snapshot_id("before-v2")
    taken = NOW - timedelta(hours=2)
    remote, local = (
        PointSnapshot(c, r, snapshot, taken) for c, r in (("remote", "us-west-2"), ("local", "eu-west-1"))
    )
    restores = RdsRestores((LOCAL,), (remote, local))
    chosen = _one(select_on_rds(restores, ["orders"], at=None, point="before-v2", daily=DAILY))
    assert chosen.backup_id == f"rds-snapshot:local:order-recovery-point-before-v2@{taken.isoformat()}"
    assert RdsRestore.parse(chosen.backup_id).snapshot_id == snapshot
    assert rds_cut(chosen).at == taken
    remote_only = RdsRestores((LOCAL,), (remote,))
    chosen = _one(select_on_rds(remote_only, ["orders"], at=None, point="before-v2", daily=DAILY))
    assert chosen.copy == "remote" and "because the live region holds no such snapshot" in chosen.reason


def test_a_restore_point_without_a_snapshot_falls_back_to_the_daily_choice() -> None:
    chosen = _one(select_on_rds(RdsRestores((LOCAL,)), ["orders"], at=None, point="before-v2", daily=DAILY))
    assert chosen.kind == "daily"
    assert chosen.reason.startswith("no RDS snapshot carries restore point 'before-v2'; so ")


def test_restore_point_names_must_fit_a_snapshot_identifier() -> None:
    assert point_snapshot_id("Before-V2") == "order-recovery-point-before-v2"
    with pytest.raises(UsageError, match="cannot name an RDS snapshot"):
        point_snapshot_id("before v2; drop")
    with pytest.raises(UsageError, match="not an RDS restore choice"):
        RdsRestore.parse("rds-pitr:elsewhere:latest")
