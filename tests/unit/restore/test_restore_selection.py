"""Backup selection: every choice and refusal, and the reason sentence it gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from catalog_builders import DAMAGED, MISSING, UNVERIFIED, entry

from recovery.errors import UsageError
from recovery.restore.selection import select_backups
from recovery.targets.model import Objectives

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)

DAILY = entry("20261125-orders-daily", T0)
REALTIME = entry("20261125-orders-realtime", T0 + 30 * MIN)
REALTIME_2 = entry("20261125-orders-realtime-2", T0 + 60 * MIN)
USERS = entry("20261125-users-daily", T0)


def test_newest_verified_realtime_backup_from_the_local_copy() -> None:
    selection = select_backups([DAILY, REALTIME, REALTIME_2, USERS], ["orders"])
    choice = selection.choice("orders")
    assert choice is not None and not selection.refused
    assert (choice.backup_id, choice.kind, choice.copy) == ("20261125-orders-realtime-2", "realtime", "local")
    assert choice.reason == (
        "realtime backup 20261125-orders-realtime-2 is the newest verified realtime backup, "
        "from the local copy"
    )


def test_remote_copy_when_the_local_copy_is_missing() -> None:
    local_gone = entry("20261125-orders-realtime-2", T0 + 60 * MIN, local=MISSING)
    choice = select_backups([DAILY, local_gone], ["orders"]).choice("orders")
    assert choice is not None and choice.copy == "remote"
    assert choice.reason.endswith("from the remote copy because the local copy is missing")


def test_remote_copy_when_the_local_copy_is_damaged() -> None:
    local_bad = entry("20261125-orders-realtime-2", T0 + 60 * MIN, local=DAMAGED)
    choice = select_backups([local_bad], ["orders"]).choice("orders")
    assert choice is not None and choice.copy == "remote"
    assert choice.reason.endswith("from the remote copy because the local copy is damaged (sha256 differs)")


def test_remote_copy_when_the_local_copy_is_not_verified() -> None:
    unverified = entry("20261125-orders-realtime-2", T0 + 60 * MIN, local=UNVERIFIED)
    choice = select_backups([unverified], ["orders"]).choice("orders")
    assert choice is not None and choice.reason.endswith("because the local copy is not verified")


def test_daily_when_no_realtime_backup_exists() -> None:
    choice = select_backups([DAILY], ["orders"]).choice("orders")
    assert choice is not None and choice.kind == "daily"
    assert choice.reason == (
        "no realtime backup of orders exists; using daily backup 20261125-orders-daily, from the local copy"
    )


def test_daily_when_the_realtime_backup_fails_verification() -> None:
    broken = entry("20261125-orders-realtime-2", T0 + 60 * MIN, local=DAMAGED, remote=MISSING)
    choice = select_backups([DAILY, REALTIME, broken], ["orders"]).choice("orders")
    assert choice is not None and choice.backup_id == "20261125-orders-daily"
    assert choice.reason.startswith(
        "realtime backup 20261125-orders-realtime-2 fails verification in both copies "
        "(local damaged: sha256 differs; remote missing: "
    )
    assert "using daily backup 20261125-orders-daily" in choice.reason


def test_daily_when_no_realtime_backup_reaches_the_requested_time() -> None:
    at = T0 + 10 * MIN  # before every realtime backup, 10 minutes after the daily one
    choice = select_backups([DAILY, REALTIME, REALTIME_2], ["orders"], at=at).choice("orders")
    assert choice is not None and choice.backup_id == "20261125-orders-daily"
    assert choice.reason.startswith("no realtime backup of orders exists at or before 2026-11-25T10:10:00Z")


def test_daily_when_the_realtime_backup_is_too_old_for_the_requested_time() -> None:
    at = T0 + 90 * MIN  # 30 minutes after the newest realtime backup; realtime reaches 120 s
    choice = select_backups([DAILY, REALTIME, REALTIME_2], ["orders"], at=at).choice("orders")
    assert choice is not None and choice.kind == "daily"
    assert choice.reason.startswith(
        "the newest realtime backup of orders at or before 2026-11-25T11:30:00Z, 20261125-orders-realtime-2 "
        "at 2026-11-25T11:00:00Z, cannot reach 2026-11-25T11:30:00Z"
    )


def test_realtime_backup_within_its_window_reaches_the_time() -> None:
    at = T0 + 61 * MIN
    choice = select_backups([DAILY, REALTIME, REALTIME_2], ["orders"], at=at).choice("orders")
    assert choice is not None and choice.backup_id == "20261125-orders-realtime-2"
    assert "newest verified realtime backup at or before 2026-11-25T11:01:00Z" in choice.reason


def test_domain_with_only_daily_backups_says_so() -> None:
    choice = select_backups([USERS], ["users"]).choice("users")
    assert choice is not None
    assert (
        choice.reason
        == "users has only daily backups; using daily backup 20261125-users-daily, from the local copy"
    )


def test_failing_daily_backup_is_skipped_for_an_older_one() -> None:
    older = entry("20261124-users-daily", T0 - timedelta(hours=20))
    broken = entry("20261125-users-daily", T0, local=DAMAGED, remote=DAMAGED)
    choice = select_backups([older, broken], ["users"]).choice("users")
    assert choice is not None and choice.backup_id == "20261124-users-daily"
    assert "daily backup 20261125-users-daily fails verification in both copies" in choice.reason


def test_refused_when_a_domain_has_no_backup() -> None:
    selection = select_backups([DAILY], ["orders", "products"])
    assert selection.refused
    refusal = selection.refusal("products")
    assert refusal is not None and refusal.reason == "no backup of products exists in either copy"
    assert not refusal.damaged  # missing, not damaged: a refusal, not an integrity error
    assert selection.choice("orders") is not None


def test_refused_when_the_time_is_before_every_backup() -> None:
    refusal = select_backups([DAILY, REALTIME], ["orders"], at=T0 - MIN).refusal("orders")
    assert refusal is not None
    assert refusal.reason.startswith(
        "2026-11-25T09:59:00Z is outside every backup of orders: the earliest is at 2026-11-25T10:00:00Z"
    )


def test_refused_when_the_time_is_beyond_every_backups_reach() -> None:
    far = T0 + timedelta(days=3)
    refusal = select_backups([DAILY, REALTIME], ["orders"], at=far, objectives=Objectives()).refusal("orders")
    assert refusal is not None and "is outside every backup of orders" in refusal.reason
    assert not refusal.damaged


def test_refused_when_no_backup_verifies() -> None:
    broken_daily = entry("20261125-users-daily", T0, local=DAMAGED, remote=MISSING)
    refusal = select_backups([broken_daily], ["users"]).refusal("users")
    assert refusal is not None
    assert refusal.reason.startswith("no usable backup of users: daily backup 20261125-users-daily fails")
    assert refusal.damaged


def test_a_damaged_realtime_backup_with_no_daily_one_is_a_damaged_refusal() -> None:
    broken = entry("20261125-orders-realtime-3", T0, DAMAGED, DAMAGED)
    refusal = select_backups([broken], ["orders"]).refusal("orders")
    assert refusal is not None and refusal.damaged


def test_a_restore_point_whose_backups_all_fail_is_a_damaged_refusal() -> None:
    broken = entry("20261125-orders-daily-2", T0, DAMAGED, DAMAGED, restore_point="before-v2")
    refusal = select_backups([broken], ["orders"], restore_point="before-v2").refusal("orders")
    assert refusal is not None and refusal.damaged
    missing = select_backups([DAILY], ["orders"], restore_point="before-v2").refusal("orders")
    assert missing is not None and not missing.damaged


def test_restore_point_is_chosen_realtime_first() -> None:
    marked_daily = entry("20261125-orders-daily-2", T0 + 5 * MIN, restore_point="before-v2")
    marked_realtime = entry("20261125-orders-realtime-3", T0 + 5 * MIN, restore_point="before-v2")
    choice = select_backups(
        [DAILY, REALTIME_2, marked_daily, marked_realtime], ["orders"], restore_point="before-v2"
    ).choice("orders")
    assert choice is not None and choice.backup_id == "20261125-orders-realtime-3"
    assert choice.reason == (
        "realtime backup 20261125-orders-realtime-3 carries restore point 'before-v2', from the local copy"
    )


def test_restore_point_falls_back_to_daily_when_the_realtime_one_fails() -> None:
    marked_daily = entry("20261125-orders-daily-2", T0 + 5 * MIN, restore_point="before-v2")
    broken = entry("20261125-orders-realtime-3", T0 + 5 * MIN, DAMAGED, DAMAGED, restore_point="before-v2")
    choice = select_backups([marked_daily, broken], ["orders"], restore_point="before-v2").choice("orders")
    assert choice is not None and choice.kind == "daily"
    assert choice.reason.startswith("20261125-orders-realtime-3 fails verification in both copies")


def test_refused_when_no_backup_carries_the_restore_point() -> None:
    refusal = select_backups([DAILY], ["orders"], restore_point="before-v3").refusal("orders")
    assert refusal is not None and refusal.reason == "no backup of orders carries restore point 'before-v3'"
    assert not refusal.damaged


def test_time_and_restore_point_together_are_refused() -> None:
    with pytest.raises(UsageError, match="either a time"):
        select_backups([DAILY], ["orders"], at=T0, restore_point="x")


def test_naive_time_is_refused() -> None:
    with pytest.raises(UsageError, match="time zone"):
        select_backups([DAILY], ["orders"], at=datetime(2026, 11, 25, 10, 0))
