"""Retention: which backups to keep and which to delete, each with a reason (pure).

Per domain and kind, among backups that count (both copies verified): keep the newest of each of the
`daily` most recent days and of each of the `weekly` most recent ISO weeks, and always the newest one.
Backups that do not count are never deleted while they might still matter: unverified ones, ones newer
than the newest verified backup, ones with one good copy left, and any when no verified backup exists.

Realtime WAL: `plan_wal_retention` keeps every WAL series a kept realtime base backup may need to recover
and deletes the series of days before the oldest kept one (see its docstring for why a day is safe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

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
    return sorted(_keep_shared_objects(entries, decisions), key=lambda decision: decision.backup_id)


def _keep_shared_objects(
    entries: Sequence[CatalogEntry], decisions: Sequence[RetentionDecision]
) -> list[RetentionDecision]:
    """A backup whose object a kept backup shares (one base backup serves both realtime domains) is
    kept while that one is: deleting it would delete the kept backup's bytes."""
    kept = {decision.backup_id for decision in decisions if decision.keep}
    sharers: dict[str, str] = {}
    for entry in entries:
        if entry.manifest is not None and entry.manifest.shares and entry.backup_id in kept:
            sharers.setdefault(entry.manifest.shares, entry.backup_id)
    return [
        RetentionDecision(
            decision.backup_id,
            True,
            f"its object holds the bytes of kept backup {sharers[decision.backup_id]}",
        )
        if not decision.keep and decision.backup_id in sharers
        else decision
        for decision in decisions
    ]


# Realtime WAL series ------------------------------------------------------------------------------------

# Clocks: a series is named after the UTC day its files were last written on the database host, and a
# base backup's position is the server's clock. Both are the same host's clock; the margin absorbs a
# skew between them (and a segment written just before midnight) without ever deleting a needed file.
WAL_CLOCK_MARGIN = timedelta(hours=1)


@dataclass(frozen=True)
class WalSeriesDecision:
    series: str
    keep: bool
    reason: str


def _series_day(series: str) -> date | None:
    """The day of a WAL series name `<YYYYMMDD>-orders-realtime.wal`, None for anything else."""
    head = series.split("-", 1)[0]
    if len(head) != 8 or not head.isdigit():
        return None
    try:
        return datetime.strptime(head, "%Y%m%d").date()
    except ValueError:
        return None


def plan_wal_retention(
    series: Sequence[str], entries: Sequence[CatalogEntry], decisions: Sequence[RetentionDecision]
) -> list[WalSeriesDecision]:
    """Keep/delete for every WAL series (both copies listed together), given the backups' decisions.

    Recovering a realtime base backup needs the WAL from the segment holding the backup's end onwards;
    each of those segments was last written at or after the backup's end (its `position`), so it sits in
    the series of that day or a later one. A series of a day before the oldest kept realtime backup's
    day (less the clock margin) is therefore needed by no kept backup. Nothing is deleted while no
    realtime backup is kept or a kept one has no readable position: its needs are unknown.
    """
    keep_ids = {decision.backup_id for decision in decisions if decision.keep}
    kept = [entry for entry in entries if entry.kind == "realtime" and entry.backup_id in keep_ids]
    unknown = [entry for entry in kept if entry.position is None]
    oldest = min(kept, key=_order) if kept and not unknown else None
    cutoff = (_position(oldest) - WAL_CLOCK_MARGIN).date() if oldest is not None else None
    found: list[WalSeriesDecision] = []
    for name in sorted(set(series)):
        day = _series_day(name)
        if day is None:
            found.append(WalSeriesDecision(name, True, "not a dated WAL series name; left alone"))
        elif unknown:
            found.append(
                WalSeriesDecision(
                    name, True, f"kept realtime backup {unknown[0].backup_id} has no readable position"
                )
            )
        elif oldest is None or cutoff is None:
            found.append(
                WalSeriesDecision(name, True, "no realtime backup is kept; WAL is kept until one is")
            )
        elif day < cutoff:
            found.append(
                WalSeriesDecision(
                    name,
                    False,
                    f"older than the oldest kept realtime backup {oldest.backup_id}: no kept backup needs it",
                )
            )
        else:
            found.append(
                WalSeriesDecision(
                    name, True, f"may hold WAL that realtime backup {oldest.backup_id} or a newer one needs"
                )
            )
    return found
