"""Freshness: which domains' newest verified backup is older than its objective (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from recovery.backup.catalog import CatalogEntry
from recovery.backup.naming import DOMAINS, Domain, Kind, kinds_of
from recovery.targets.model import Objectives


@dataclass(frozen=True)
class FreshnessFinding:
    """A domain and kind whose newest verified backup is too old, or that has none; `reason` says which."""

    domain: Domain
    kind: Kind
    newest: str | None
    age_seconds: float | None
    limit_seconds: float
    reason: str


def reaches(entry: CatalogEntry) -> datetime:
    """The last moment a backup that counts can be restored to."""
    assert entry.position is not None
    return max(entry.position, entry.covered_until or entry.position)


def limit_seconds(kind: Kind, objectives: Objectives) -> float:
    if kind == "realtime":
        return objectives.realtime_backup_max_age_seconds
    return objectives.daily_backup_max_age_hours * 3600


def _duration(seconds: float) -> str:
    if seconds < 600:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def stale_backups(
    entries: Sequence[CatalogEntry],
    objectives: Objectives,
    now: datetime,
    domains: Sequence[Domain] = DOMAINS,
) -> list[FreshnessFinding]:
    """Every (domain, kind) whose newest backup that counts is older than its objective, or missing.

    Age is measured from the last time the backup reaches (what a restore would lose): its source
    position, or for a realtime backup the end of the WAL shipped after it (`covered_until`, filled by
    `recovery.backup.realtime.with_coverage`), so a day-old base backup with WAL shipped a minute ago is a
    minute old.
    """
    findings: list[FreshnessFinding] = []
    for domain in domains:
        for kind in kinds_of(domain):
            limit = limit_seconds(kind, objectives)
            counted = [
                entry
                for entry in entries
                if entry.domain == domain
                and entry.kind == kind
                and entry.counts
                and entry.position is not None
            ]
            if not counted:
                findings.append(
                    FreshnessFinding(
                        domain,
                        kind,
                        None,
                        None,
                        limit,
                        f"no verified {kind} backup of {domain} exists (both copies must exist and verify)",
                    )
                )
                continue
            newest = max(counted, key=lambda entry: (entry.position, entry.name))
            assert newest.position is not None
            age = (now - reaches(newest)).total_seconds()
            if age > limit:
                findings.append(
                    FreshnessFinding(
                        domain,
                        kind,
                        newest.backup_id,
                        age,
                        limit,
                        f"the newest verified {kind} backup of {domain}, {newest.backup_id}, is "
                        f"{_duration(age)} old, over the objective of {_duration(limit)}",
                    )
                )
    return findings
