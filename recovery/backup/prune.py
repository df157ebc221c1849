"""Retention applied: what `recovery backup prune` deletes from both copies, and the check after.

The decisions themselves are pure (`recovery.backup.retention`); this module observes both copies,
deletes what the operator confirmed and is still outside the retention, and checks the result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from recovery.backup.catalog import catalog_for
from recovery.backup.naming import BackupName
from recovery.backup.realtime import coverage, delete_wal_range, delete_wal_series, wal_series
from recovery.backup.repository import object_key
from recovery.backup.retention import (
    RetentionDecision,
    RetentionPolicy,
    WalSeriesDecision,
    plan_retention,
    plan_wal_retention,
)
from recovery.backup.wal import WAL_DOMAIN
from recovery.errors import IntegrityError, VerificationFailed
from recovery.targets.model import Target


@dataclass(frozen=True)
class PrunePlan:
    """What retention decided: every backup and every WAL series, each with its reason."""

    backups: tuple[RetentionDecision, ...]
    wal_series: tuple[WalSeriesDecision, ...]

    @property
    def doomed_backups(self) -> list[str]:
        return [decision.backup_id for decision in self.backups if not decision.keep]

    @property
    def doomed_series(self) -> list[str]:
        return [decision.series for decision in self.wal_series if not decision.keep]

    def reasons(self) -> dict[str, str]:
        return {d.backup_id: d.reason for d in self.backups} | {d.series: d.reason for d in self.wal_series}


def plan_prune(target: Target, policy: RetentionPolicy) -> PrunePlan:
    """Shallow-verify every backup (both copies), then decide backups and WAL series (both copies)."""
    catalog = catalog_for(target, with_keys=False)
    entries = [catalog.verify(entry.backup_id) for entry in catalog.entries()]
    decisions = plan_retention(entries, policy)
    series = sorted(set(wal_series(catalog.local)) | set(wal_series(catalog.remote)))
    return PrunePlan(tuple(decisions), tuple(plan_wal_retention(series, entries, decisions)))


@dataclass(frozen=True)
class PruneDecision:
    """What a prune run deletes: the confirmed names still outside the retention; the rest is kept."""

    backups: tuple[str, ...]
    wal_series: tuple[str, ...]
    kept_realtime: tuple[str, ...]  # realtime backups kept: checked afterwards to still reach their WAL
    no_longer_doomed: tuple[str, ...]  # confirmed, but inside the retention now


def confirmed_decision(plan: PrunePlan, backups: Sequence[str], wal_series: Sequence[str]) -> PruneDecision:
    """Intersect what the operator confirmed with what retention decides now (a backup verified or taken
    since the confirmation can change the answer). Pure."""
    confirmed_backups, confirmed_series = set(backups), set(wal_series)
    doomed_backups = [backup_id for backup_id in plan.doomed_backups if backup_id in confirmed_backups]
    doomed_series = [name for name in plan.doomed_series if name in confirmed_series]
    kept = sorted((confirmed_backups - set(doomed_backups)) | (confirmed_series - set(doomed_series)))
    realtime = [
        d.backup_id for d in plan.backups if d.keep and BackupName.parse(d.backup_id).kind == "realtime"
    ]
    return PruneDecision(tuple(doomed_backups), tuple(doomed_series), tuple(realtime), tuple(kept))


def delete_backups(target: Target, backup_ids: Sequence[str], progress: Callable[[str], None]) -> list[str]:
    """Delete each backup from both copies (a realtime backup with its WAL range); the ids deleted."""
    catalog = catalog_for(target, with_keys=False)
    deleted: list[str] = []
    for backup_id in backup_ids:
        progress(f"deleting {backup_id} from both copies")
        catalog.delete(backup_id)
        name = BackupName.parse(backup_id)
        if name.kind == "realtime":
            for store in (catalog.local, catalog.remote):
                delete_wal_range(store, name)
        deleted.append(backup_id)
    return deleted


def delete_series(
    target: Target, series: Sequence[str], progress: Callable[[str], None]
) -> dict[str, dict[str, int]]:
    """Delete each WAL series from both copies; the objects deleted per series and copy."""
    catalog = catalog_for(target, with_keys=False)
    objects: dict[str, dict[str, int]] = {}
    for name in series:
        progress(f"deleting WAL series {name} from both copies")
        objects[name] = {
            "local": delete_wal_series(catalog.local, name),
            "remote": delete_wal_series(catalog.remote, name),
        }
    return objects


def check_after_prune(
    target: Target,
    deleted_backups: Sequence[str],
    deleted_series: Sequence[str],
    kept_realtime: Sequence[str],
) -> dict[str, int]:
    """Nothing deleted is left in either copy, and every kept realtime backup still reaches its WAL from
    the segment holding its end in each copy that holds it. The segments found per kept backup and copy;
    raises VerificationFailed on the first problem."""
    catalog = catalog_for(target, with_keys=False)
    copies = (("local", catalog.local), ("remote", catalog.remote))
    problems: list[str] = []
    for backup_id in deleted_backups:
        key = object_key(BackupName.parse(backup_id))
        problems += [
            f"{store.describe(key)} is still there" for _, store in copies if store.head(key) is not None
        ]
    for series in deleted_series:
        problems += [
            f"WAL series {series} still has objects in the {label} copy"
            for label, store in copies
            if store.list_keys(f"{WAL_DOMAIN}/{series}/")
        ]
    checked: dict[str, int] = {}
    for backup_id in kept_realtime:
        name = BackupName.parse(backup_id)
        for label, store in copies:
            if store.head(object_key(name)) is None:
                continue
            try:
                found = coverage(store, name)
            except IntegrityError as exc:
                problems.append(f"{backup_id} ({label} copy): {exc.message}")
                continue
            first = found.wal_range.first_segment.name()
            if not found.segments or found.segments[0].file_name != first:
                problems.append(f"{backup_id} ({label} copy) no longer finds its first WAL segment {first}")
            checked[f"{backup_id} ({label})"] = len(found.segments)
    if problems:
        raise VerificationFailed(f"after pruning: {problems[0]}")
    return checked
