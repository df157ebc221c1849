"""Freshness: which domains' newest verified backup is older than its objective, and why."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from catalog_builders import DAMAGED, entry

from recovery.backup.catalog import CatalogEntry
from recovery.backup.freshness import stale_backups
from recovery.targets.model import Objectives

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def fresh_set() -> list[CatalogEntry]:
    return [
        entry("20261125-orders-realtime", NOW - timedelta(seconds=30)),
        entry("20261125-transactions-realtime", NOW - timedelta(seconds=60)),
        *(
            entry(f"20261125-{domain}-daily", NOW - timedelta(hours=2))
            for domain in ("orders", "users", "products", "transactions", "logs")
        ),
    ]


def test_everything_fresh_reports_nothing() -> None:
    assert stale_backups(fresh_set(), Objectives(), NOW) == []


def test_old_realtime_backup_is_reported_with_its_age_and_objective() -> None:
    findings = stale_backups(fresh_set(), Objectives(), NOW + timedelta(minutes=5))
    assert [(finding.domain, finding.kind) for finding in findings] == [
        ("orders", "realtime"),
        ("transactions", "realtime"),
    ]
    assert findings[0].reason == (
        "the newest verified realtime backup of orders, 20261125-orders-realtime, is 330 s old, "
        "over the objective of 120 s"
    )
    assert findings[0].age_seconds == 330


def test_a_realtime_backup_is_as_old_as_the_end_of_the_wal_shipped_after_it() -> None:
    later = NOW + timedelta(hours=5)
    shipped = [
        replace(item, covered_until=later - timedelta(seconds=20)) if item.kind == "realtime" else item
        for item in fresh_set()
    ]
    assert stale_backups(shipped, Objectives(), later) == []
    stopped = stale_backups(shipped, Objectives(), later + timedelta(minutes=3))
    assert [(f.domain, f.kind, f.age_seconds) for f in stopped] == [
        ("orders", "realtime", 200),
        ("transactions", "realtime", 200),
    ]


def test_old_daily_backup_is_reported_against_26_hours() -> None:
    findings = stale_backups(
        fresh_set(), Objectives(realtime_backup_max_age_seconds=10**6), NOW + timedelta(hours=25)
    )
    assert {finding.kind for finding in findings} == {"daily"}
    assert len(findings) == 5
    assert findings[0].reason.endswith("is 27.0 h old, over the objective of 26.0 h")


def test_missing_domain_and_unverified_newest_backup() -> None:
    entries = [item for item in fresh_set() if item.domain != "logs"]
    entries.append(entry("20261125-orders-realtime-2", NOW, local=DAMAGED))  # newest, but does not count
    findings = stale_backups(entries, Objectives(), NOW + timedelta(seconds=50))
    assert [(finding.domain, finding.kind) for finding in findings] == [("logs", "daily")]
    assert findings[0].reason == "no verified daily backup of logs exists (both copies must exist and verify)"
    assert findings[0].newest is None
