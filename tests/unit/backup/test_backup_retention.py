"""Retention: N daily, M weekly, never the newest verified one, never what might still matter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from catalog_builders import DAMAGED, MISSING, OK, UNVERIFIED, entry

from recovery.backup.catalog import CatalogEntry, CopyStatus
from recovery.backup.naming import BackupName
from recovery.backup.retention import (
    RetentionDecision,
    RetentionPolicy,
    WalSeriesDecision,
    plan_retention,
    plan_wal_retention,
)
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


# Realtime WAL series ------------------------------------------------------------------------------------


def realtime(domain: str, days_ago: int, hour: int = 12) -> CatalogEntry:
    moment = (NOON - timedelta(days=days_ago)).replace(hour=hour)
    return entry(f"{moment:%Y%m%d}-{domain}-realtime", moment)


def series(days_ago: int) -> str:
    return f"{NOON - timedelta(days=days_ago):%Y%m%d}-orders-realtime.wal"


def wal_decisions(
    names: list[str], entries: list[CatalogEntry], policy: RetentionPolicy
) -> dict[str, WalSeriesDecision]:
    backups = plan_retention(entries, policy)
    return {decision.series: decision for decision in plan_wal_retention(names, entries, backups)}


def test_wal_series_older_than_the_oldest_kept_realtime_backup_are_deleted() -> None:
    entries = [
        realtime(domain, days_ago) for days_ago in (0, 2, 4, 6) for domain in ("orders", "transactions")
    ]
    names = [series(days_ago) for days_ago in range(8)]
    result = wal_decisions(names, entries, RetentionPolicy(daily=2, weekly=0))
    # Kept: the backups of 0 and 2 days ago; the series of 2 days ago holds the WAL after that backup.
    assert sorted(name for name, decision in result.items() if decision.keep) == [
        series(2),
        series(1),
        series(0),
    ]
    gone = result[series(3)]
    assert not gone.keep
    oldest = realtime("orders", 2).backup_id
    assert gone.reason == f"older than the oldest kept realtime backup {oldest}: no kept backup needs it"
    assert result[series(2)].reason.startswith(
        f"may hold WAL that realtime backup {realtime('orders', 2).backup_id}"
    )


def test_the_oldest_kept_backup_of_either_realtime_domain_decides() -> None:
    # Transactions keeps an older backup than orders (orders has a newer one of the same day count).
    entries = [realtime("orders", 0), realtime("orders", 1), realtime("transactions", 3)]
    result = wal_decisions(
        [series(days_ago) for days_ago in range(5)], entries, RetentionPolicy(daily=1, weekly=0)
    )
    assert [name for name, decision in result.items() if not decision.keep] == [series(4)]


def test_a_backup_just_after_midnight_keeps_the_series_of_the_day_before() -> None:
    # Clocks of the host (series days) and the server (positions) may differ a little.
    entries = [realtime("orders", 1, hour=0)]
    result = wal_decisions([series(3), series(2), series(1)], entries, RetentionPolicy(daily=1, weekly=0))
    assert not result[series(3)].keep
    assert result[series(2)].keep, "within the clock margin of the backup's position"
    assert result[series(1)].keep


def test_no_wal_is_deleted_without_a_kept_realtime_backup() -> None:
    entries = [entry("20261125-orders-daily", NOON)]
    result = wal_decisions([series(30)], entries, RetentionPolicy(daily=1, weekly=0))
    assert result[series(30)].keep
    assert result[series(30)].reason == "no realtime backup is kept; WAL is kept until one is"


def test_unverified_realtime_backups_count_as_kept_and_protect_their_wal() -> None:
    entries = [
        realtime("orders", 0),
        entry(realtime("orders", 5).backup_id, NOON - timedelta(days=5), UNVERIFIED),
    ]
    result = wal_decisions([series(6), series(5)], entries, RetentionPolicy(daily=1, weekly=0))
    assert not result[series(6)].keep
    assert result[series(5)].keep


def test_a_kept_realtime_backup_without_position_keeps_every_series() -> None:
    broken = CatalogEntry(BackupName.parse("20261120-orders-realtime"), UNVERIFIED, UNVERIFIED)
    entries = [realtime("orders", 0), broken]
    result = wal_decisions([series(20)], entries, RetentionPolicy(daily=1, weekly=0))
    assert result[series(20)].keep and "has no readable position" in result[series(20)].reason


def test_foreign_names_are_left_alone() -> None:
    result = wal_decisions(
        ["notes.wal", "2026xx01-orders-realtime.wal"], [realtime("orders", 0)], RetentionPolicy()
    )
    assert all(decision.keep for decision in result.values())
