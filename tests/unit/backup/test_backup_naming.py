"""Backup names: the plan's form, the same-day sequence, strict parsing."""

from __future__ import annotations

from datetime import date

import pytest

from recovery.backup.naming import BackupName, is_backup_name, kinds_of, next_name
from recovery.errors import UsageError

DAY = date(2026, 11, 25)


def test_first_backup_of_a_day_has_the_plans_name() -> None:
    name = BackupName(DAY, "orders", "realtime")
    assert name.file_name == "20261125-orders-realtime.bak"
    assert name.manifest_name == "20261125-orders-realtime.bak.manifest.json"
    assert name.backup_id == "20261125-orders-realtime"


def test_later_backups_the_same_day_get_a_sequence_and_never_reuse_a_name() -> None:
    existing = [BackupName(DAY, "orders", "daily"), BackupName(DAY, "orders", "daily", 2)]
    following = next_name(DAY, "orders", "daily", existing)
    assert following.file_name == "20261125-orders-daily-3.bak"
    assert next_name(DAY, "users", "daily", existing).file_name == "20261125-users-daily.bak"
    assert next_name(date(2026, 11, 26), "orders", "daily", existing).seq == 1


@pytest.mark.parametrize(
    "text",
    ["20261125-orders-realtime.bak", "20261125-logs-daily-12.bak", "20261125-transactions-realtime-2"],
)
def test_parse_round_trips(text: str) -> None:
    parsed = BackupName.parse(text)
    assert parsed.backup_id == text.removesuffix(".bak")


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("20261125-orders-weekly.bak", "unknown backup kind"),
        ("20261125-invoices-daily.bak", "unknown backup domain"),
        ("20261131-orders-daily.bak", "impossible date"),
        ("2026-11-25-orders-daily.bak", "not a backup name"),
        ("20261125-orders-daily-1.bak", "no -1 suffix"),
        ("20261125-orders-daily-02.bak", "not a backup name"),
        ("20261125-Orders-daily.bak", "not a backup name"),
        ("20261125-orders-daily.bak.tmp", "not a backup name"),
        ("20261125-users-realtime.bak", "has no realtime backups"),
        ("\uff120261125-orders-daily.bak", "not a backup name"),  # a full-width digit
    ],
)
def test_malformed_names_are_refused_with_a_reason(text: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        BackupName.parse(text)
    assert not is_backup_name(text)


def test_names_order_by_day_then_sequence() -> None:
    names = [BackupName(DAY, "orders", "daily", 10), BackupName(DAY, "orders", "daily", 2)]
    assert [name.seq for name in sorted(names)] == [2, 10]


def test_realtime_domains() -> None:
    assert kinds_of("orders") == ("realtime", "daily")
    assert kinds_of("users") == ("daily",)
