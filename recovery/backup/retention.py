"""Retention: which backups to keep and which to delete, each with a reason (pure).

Per domain and kind, among backups that count (both copies verified): keep the newest of each of the
`daily` most recent days and of each of the `weekly` most recent ISO weeks, and always the newest one.
Backups that do not count are never deleted while they might still matter: unverified ones, ones newer
than the newest verified backup, ones with one good copy left, and any when no verified backup exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from recovery.backup.catalog import CatalogEntry, CopyState
from recovery.errors import UsageError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RetentionPolicy:
    daily: int = 7
    weekly: int = 4

    def __post_init__(self) -> None:
        if self.daily < 1 or self.weekly < 0:
            raise UsageError("retention needs daily >= 1 and weekly >= 0")


@dataclass(frozen=True)
class RetentionDecision:
    backup_id: str
    keep: bool
    reason: str


def _position(entry: CatalogEntry) -> datetime:
    return entry.position or _EPOCH


def _order(entry: CatalogEntry) -> tuple[datetime, object]:
    return (_position(entry), entry.name)


def _decide_uncounted(entry: CatalogEntry, newest: CatalogEntry | None) -> RetentionDecision:
    states = (entry.local.state, entry.remote.state)
    label = f"{entry.domain} {entry.kind}"
    if CopyState.PRESENT in states:
        return RetentionDecision(
            entry.backup_id, True, "not verified yet; verify it before retention judges it"
        )
    if newest is None:
        return RetentionDecision(
            entry.backup_id, True, f"no verified {label} backup exists; nothing is deleted until one does"
        )
    if _order(entry) > _order(newest):
        return RetentionDecision(
            entry.backup_id, True, f"newer than the newest verified {label} backup {newest.backup_id}"
        )
    if CopyState.VERIFIED in states:
        return RetentionDecision(
            entry.backup_id, True, "only one copy verifies; repair the other copy before retention judges it"
        )
    return RetentionDecision(
        entry.backup_id,
        False,
        f"no copy verifies (local {entry.local.state}, remote {entry.remote.state}) and a newer "
        f"verified backup {newest.backup_id} exists",
    )


def _decide_group(group: Sequence[CatalogEntry], policy: RetentionPolicy) -> list[RetentionDecision]:
    counted = sorted((entry for entry in group if entry.counts), key=_order, reverse=True)
    newest = counted[0] if counted else None
    decisions = [_decide_uncounted(entry, newest) for entry in group if not entry.counts]
    days: list[object] = []
    weeks: list[object] = []
    for entry in counted:
        day = _position(entry).date()
        iso = day.isocalendar()
        week = (iso.year, iso.week)
        reasons: list[str] = []
        if entry is newest:
            reasons.append(f"the newest verified {entry.domain} {entry.kind} backup is always kept")
        if day not in days and len(days) < policy.daily:
            days.append(day)
            reasons.append(f"newest of {day.isoformat()}, one of the {policy.daily} most recent days kept")
        if week not in weeks and len(weeks) < policy.weekly:
            weeks.append(week)
            reasons.append(
                f"newest of week {iso.year}-W{iso.week:02d}, "
                f"one of the {policy.weekly} most recent weeks kept"
            )
        if reasons:
            decisions.append(RetentionDecision(entry.backup_id, True, "; ".join(reasons)))
        elif day in days:
            decisions.append(
                RetentionDecision(
                    entry.backup_id, False, f"a newer verified backup of {day.isoformat()} is kept"
                )
            )
        else:
            decisions.append(
                RetentionDecision(
                    entry.backup_id,
                    False,
                    f"older than the {policy.daily} most recent days "
                    f"and {policy.weekly} most recent weeks kept",
                )
            )
    return decisions


def plan_retention(entries: Sequence[CatalogEntry], policy: RetentionPolicy) -> list[RetentionDecision]:
    """Keep/delete for every entry, grouped by domain and kind, in backup id order."""
    groups: dict[tuple[str, str], list[CatalogEntry]] = {}
    for entry in entries:
        groups.setdefault((entry.domain, entry.kind), []).append(entry)
    decisions = [decision for group in groups.values() for decision in _decide_group(group, policy)]
    return sorted(decisions, key=lambda decision: decision.backup_id)
