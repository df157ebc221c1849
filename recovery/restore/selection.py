"""Which backup to restore, per domain, and why (pure).

Given catalog entries with their copies' verification states, the requested domains and either a time
(`--at`) or a restore point name, choose per domain:

- realtime first; the daily backup when the realtime one is missing, fails verification (no copy
  verified) or cannot reach the requested time;
- the local copy, or the remote one when the local copy is missing, damaged or unverified;
- or refuse the domain: no backup at all, none that verifies, none carrying the restore point, or the
  time outside every backup's range.

A backup reaches time T when its position (the time its data is consistent with) is at or before T and
no more than its kind's objective earlier: the realtime objective for realtime backups, the daily one
for daily backups. Without a time the newest backup is wanted. Every outcome carries a reason sentence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from recovery.backup.catalog import CatalogEntry, CopyState, CopyStatus
from recovery.backup.naming import Domain, Kind, kinds_of
from recovery.errors import UsageError
from recovery.targets.model import Objectives

CopyLabel = Literal["local", "remote"]


@dataclass(frozen=True)
class DomainChoice:
    domain: Domain
    backup_id: str
    kind: Kind
    copy: CopyLabel
    reason: str


@dataclass(frozen=True)
class DomainRefusal:
    domain: Domain
    reason: str
    # True when backups exist but every candidate failed verification (damaged, tampered with, or not
    # trusted): an integrity problem, not a missing backup. Callers decide on this, never on `reason`.
    damaged: bool = False


@dataclass(frozen=True)
class Selection:
    choices: tuple[DomainChoice, ...]
    refusals: tuple[DomainRefusal, ...]

    @property
    def refused(self) -> bool:
        return bool(self.refusals)

    def choice(self, domain: Domain) -> DomainChoice | None:
        return next((choice for choice in self.choices if choice.domain == domain), None)

    def refusal(self, domain: Domain) -> DomainRefusal | None:
        return next((refusal for refusal in self.refusals if refusal.domain == domain), None)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _copy_text(status: CopyStatus) -> str:
    return f"{status.state}: {status.detail}" if status.detail else str(status.state)


def pick_copy(entry: CatalogEntry) -> tuple[CopyLabel, str] | None:
    """The copy to read, and why; None when neither copy verified."""
    if entry.local.usable:
        return "local", "from the local copy"
    if entry.remote.usable:
        local = entry.local
        why = {
            CopyState.MISSING: "is missing",
            CopyState.DAMAGED: f"is damaged ({local.detail})" if local.detail else "is damaged",
            CopyState.PRESENT: "is not verified",
        }.get(local.state, f"is {local.state}")
        return "remote", f"from the remote copy because the local copy {why}"
    return None


def _failing(entry: CatalogEntry) -> str:
    return (
        f"{entry.backup_id} fails verification in both copies "
        f"(local {_copy_text(entry.local)}; remote {_copy_text(entry.remote)})"
    )


def _window(kind: Kind, objectives: Objectives) -> timedelta:
    if kind == "realtime":
        return timedelta(seconds=objectives.realtime_backup_max_age_seconds)
    return timedelta(hours=objectives.daily_backup_max_age_hours)


def _reaches(entry: CatalogEntry, at: datetime, objectives: Objectives) -> bool:
    """`at` is at or after the entry's position and no later than its kind's objective after it, or
    than the end of its shipped WAL (realtime backups)."""
    end = _position(entry) + _window(entry.kind, objectives)
    if entry.covered_until is not None:
        end = max(end, entry.covered_until)
    return _position(entry) <= at <= end


def _newest_first(entries: Sequence[CatalogEntry]) -> list[CatalogEntry]:
    return sorted(entries, key=lambda entry: (_position(entry), entry.name), reverse=True)


def _position(entry: CatalogEntry) -> datetime:
    position = entry.position
    assert position is not None, "only entries with a manifest are compared by time"
    return position


def _choose(entry: CatalogEntry, why: str) -> DomainChoice:
    picked = pick_copy(entry)
    assert picked is not None
    copy, copy_reason = picked
    return DomainChoice(entry.domain, entry.backup_id, entry.kind, copy, f"{why}, {copy_reason}")


def _by_restore_point(
    domain: Domain, entries: Sequence[CatalogEntry], point: str
) -> DomainChoice | DomainRefusal:
    marked = [entry for entry in entries if entry.manifest and entry.manifest.source.restore_point == point]
    if not marked:
        return DomainRefusal(domain, f"no backup of {domain} carries restore point {point!r}")
    failures: list[str] = []
    for kind in kinds_of(domain):
        for entry in _newest_first([entry for entry in marked if entry.kind == kind]):
            if pick_copy(entry) is None:
                failures.append(_failing(entry))
                continue
            prefix = f"{'; '.join(failures)}; so " if failures else ""
            return _choose(entry, f"{prefix}{kind} backup {entry.backup_id} carries restore point {point!r}")
    return DomainRefusal(
        domain,
        f"no backup of {domain} with restore point {point!r} verifies: {'; '.join(failures)}",
        damaged=True,
    )


def _realtime_problem(
    domain: Domain, entries: Sequence[CatalogEntry], at: datetime | None, objectives: Objectives
) -> tuple[CatalogEntry | None, str, bool]:
    """The realtime backup to use, or None and the sentence saying why the daily one is used instead;
    the flag says the reason is a damaged backup."""
    candidates = _newest_first([entry for entry in entries if entry.kind == "realtime"])
    scope = f" at or before {_when(at)}" if at else ""
    if not candidates:
        return None, f"no realtime backup of {domain} exists{scope}", False
    newest = candidates[0]
    if at is not None and not _reaches(newest, at, objectives):
        return (
            None,
            f"the newest realtime backup of {domain}{scope}, {newest.backup_id} "
            f"at {_when(_position(newest))}, cannot reach {_when(at)}",
            False,
        )
    if pick_copy(newest) is None:
        return None, f"realtime backup {_failing(newest)}", True
    return newest, f"realtime backup {newest.backup_id} is the newest verified realtime backup{scope}", False


def _by_time(
    domain: Domain, entries: Sequence[CatalogEntry], at: datetime | None, objectives: Objectives
) -> DomainChoice | DomainRefusal:
    if not entries:
        return DomainRefusal(domain, f"no backup of {domain} exists in either copy")
    known = [entry for entry in entries if entry.position is not None]
    if not known:
        # No copy's manifest was readable and trusted: every backup fails verification (the reasons say
        # why, e.g. a manifest that does not authenticate with the target's keys).
        newest = max(entries, key=lambda entry: entry.name)
        return DomainRefusal(
            domain, f"no backup of {domain} has a trusted manifest: {_failing(newest)}", damaged=True
        )
    reachable = [entry for entry in known if at is None or _position(entry) <= at]
    if at is not None and not any(_reaches(entry, at, objectives) for entry in reachable):
        earliest = min(_position(entry) for entry in known)
        return DomainRefusal(
            domain,
            f"{_when(at)} is outside every backup of {domain}: the earliest is at {_when(earliest)}, and no "
            "backup is at or shortly before that time",
        )
    why, realtime_damaged = "", False
    if "realtime" in kinds_of(domain):
        realtime, why, realtime_damaged = _realtime_problem(domain, reachable, at, objectives)
        if realtime is not None:
            return _choose(realtime, why)
    failures: list[str] = []
    for entry in _newest_first([entry for entry in reachable if entry.kind == "daily"]):
        if at is not None and at - _position(entry) > _window("daily", objectives):
            break  # older ones reach even less far
        if pick_copy(entry) is None:
            failures.append(f"daily backup {_failing(entry)}")
            continue
        lead = f"{why}; " if why else f"{domain} has only daily backups; "
        skipped = f"{'; '.join(failures)}; " if failures else ""
        return _choose(entry, f"{lead}{skipped}using daily backup {entry.backup_id}")
    reasons = (
        "; ".join([why, *failures] if why else failures) or f"no daily backup of {domain} reaches the time"
    )
    return DomainRefusal(
        domain, f"no usable backup of {domain}: {reasons}", damaged=realtime_damaged or bool(failures)
    )


def select_backups(
    entries: Sequence[CatalogEntry],
    domains: Sequence[Domain],
    *,
    at: datetime | None = None,
    restore_point: str | None = None,
    objectives: Objectives | None = None,
) -> Selection:
    """Choose a backup and a copy per requested domain, or refuse it, each with a reason sentence."""
    if at is not None and restore_point is not None:
        raise UsageError("give either a time (--at) or a restore point, not both")
    if at is not None and at.tzinfo is None:
        raise UsageError("the --at time needs a time zone, e.g. 2026-11-25T10:00:00Z")
    if not domains:
        raise UsageError(
            "no domains requested; name at least one of orders, users, products, transactions, logs"
        )
    limits = objectives or Objectives()
    outcomes: list[DomainChoice | DomainRefusal] = []
    for domain in dict.fromkeys(domains):
        mine = [entry for entry in entries if entry.domain == domain]
        if restore_point is not None:
            outcomes.append(_by_restore_point(domain, mine, restore_point))
        else:
            outcomes.append(_by_time(domain, mine, at, limits))
    return Selection(
        tuple(outcome for outcome in outcomes if isinstance(outcome, DomainChoice)),
        tuple(outcome for outcome in outcomes if isinstance(outcome, DomainRefusal)),
    )
