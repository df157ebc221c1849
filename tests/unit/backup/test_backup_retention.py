"""Retention: N daily, M weekly, never the newest verified one, never what might still matter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from backup_builders import DAMAGED, MISSING, OK, UNVERIFIED, entry

from recovery.backup.catalog import CatalogEntry, CopyStatus
from recovery.backup.retention import RetentionDecision, RetentionPolicy, plan_retention
from recovery.errors import UsageError

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday, ISO week 48


def daily(days_ago: int, local: CopyStatus = OK, remote: CopyStatus = OK) -> CatalogEntry:
    moment = NOON - timedelta(days=days_ago)
    return entry(f"{moment:%Y%m%d}-users-daily", moment, local, remote)


def decisions(entries: list[CatalogEntry], policy: RetentionPolicy) -> dict[str, RetentionDecision]:
    return {decision.backup_id: decision for decision in plan_retention(entries, policy)}


def test_keeps_n_daily_and_m_weekly_and_deletes_the_rest() -> None:
    entries = [daily(days_ago) for days_ago in range(30)]
    result = decisions(entries, RetentionPolicy(daily=3, weekly=3))
    kept = sorted(backup_id for backup_id, decision in result.items() if decision.keep)
    # 3 newest days (25, 24, 23), plus the newest of weeks 47 (22nd) and 46 (15th).
    assert kept == [
        "20261115-users-daily",
        "20261122-users-daily",
        "20261123-users-daily",
        "20261124-users-daily",
        "20261125-users-daily",
    ]
    assert result["20261125-users-daily"].reason.startswith(
        "the newest verified users daily backup is always kept"
    )
    assert "newest of week 2026-W47" in result["20261122-users-daily"].reason
    assert (
        result["20261101-users-daily"].reason
        == "older than the 3 most recent days and 3 most recent weeks kept"
    )
    assert len(result) == 30


def test_only_the_newest_of_a_day_keeps_the_days_slot() -> None:
    first = entry("20261125-orders-realtime", NOON)
    second = entry("20261125-orders-realtime-2", NOON + timedelta(minutes=2))
    result = decisions([first, second], RetentionPolicy(daily=7, weekly=4))
    assert result["20261125-orders-realtime-2"].keep
    assert not result["20261125-orders-realtime"].keep
    assert result["20261125-orders-realtime"].reason == "a newer verified backup of 2026-11-25 is kept"


def test_newest_verified_backup_is_kept_even_when_damaged_ones_are_newer() -> None:
    verified = daily(3)
    newer_damaged = daily(1, local=DAMAGED, remote=MISSING)
    result = decisions([verified, newer_damaged], RetentionPolicy(daily=1, weekly=0))
    assert result[verified.backup_id].keep
    assert result[newer_damaged.backup_id].keep
    assert result[newer_damaged.backup_id].reason == (
        f"newer than the newest verified users daily backup {verified.backup_id}"
    )


def test_damaged_backup_older_than_a_verified_one_is_deleted() -> None:
    verified = daily(1)
    old_damaged = daily(5, local=DAMAGED, remote=DAMAGED)
    decision = decisions([verified, old_damaged], RetentionPolicy(daily=7, weekly=4))[old_damaged.backup_id]
    assert not decision.keep
    assert decision.reason.startswith("no copy verifies (local damaged, remote damaged)")


def test_unverified_backups_are_kept_until_verified() -> None:
    verified = daily(0)
    unverified = daily(9, local=UNVERIFIED, remote=UNVERIFIED)
    decision = decisions([verified, unverified], RetentionPolicy(daily=1, weekly=0))[unverified.backup_id]
    assert decision.keep and decision.reason == "not verified yet; verify it before retention judges it"


def test_backup_with_one_good_copy_is_kept_for_repair() -> None:
    verified = daily(0)
    half = daily(9, local=MISSING)
    decision = decisions([verified, half], RetentionPolicy(daily=1, weekly=0))[half.backup_id]
    assert decision.keep and decision.reason.startswith("only one copy verifies")


def test_nothing_is_deleted_while_no_verified_backup_exists() -> None:
    damaged = [daily(days_ago, local=DAMAGED, remote=DAMAGED) for days_ago in range(3)]
    result = plan_retention(damaged, RetentionPolicy(daily=1, weekly=0))
    assert all(decision.keep for decision in result)
    assert result[0].reason == "no verified users daily backup exists; nothing is deleted until one does"


def test_domains_and_kinds_are_judged_separately() -> None:
    users = daily(0)
    orders_daily = entry("20261120-orders-daily", NOON - timedelta(days=5))
    orders_realtime = entry("20261125-orders-realtime", NOON)
    result = decisions([users, orders_daily, orders_realtime], RetentionPolicy(daily=1, weekly=0))
    assert all(decision.keep for decision in result.values())


def test_bad_policy_is_refused() -> None:
    with pytest.raises(UsageError, match="daily >= 1"):
        RetentionPolicy(daily=0, weekly=4)
