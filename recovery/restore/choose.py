"""Choosing what a restore reads: candidates checked in both copies, `select_backups` per domain (with
realtime restore points asked for beside the WAL), the refusal as one error, and the pure helpers the
fallback uses when a chosen copy fails while it is read."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from recovery.backup.catalog import Catalog, CatalogEntry, CopyState, CopyStatus, catalog_for
from recovery.backup.manifest import Manifest
from recovery.backup.naming import BackupName, Domain
from recovery.backup.realtime import read_restore_point, realtime_stores, with_coverage
from recovery.backup.wal import check_restore_point_name
from recovery.drivers import db as dbdriver
from recovery.errors import IntegrityError, PreconditionFailed, UsageError
from recovery.restore.pitr import choose_for_restore_point
from recovery.restore.rds_source import is_rds_choice, is_rds_target, rds_cut, rds_selection
from recovery.restore.scope import Cut, LiveRows, ScopeDecision, ScopeFindings, ScopePolicy, find_scope
from recovery.restore.selection import DomainChoice, Selection, select_backups
from recovery.targets.model import Target


@dataclass(frozen=True)
class RestoreRequest:
    """What the operator asked for: domains, a time or a restore point (or neither: the newest)."""

    domains: tuple[Domain, ...]
    at: datetime | None
    point: str | None


def choose(
    target: Target,
    request: RestoreRequest,
    entries: Sequence[CatalogEntry] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[Selection, list[CatalogEntry]]:
    """Select a backup and a copy per domain from `entries` (default: every candidate, both copies
    verified now); returns the selection and the entries it was made from."""
    if entries is None:
        entries = verified_entries(target, request.domains, progress)
    if is_rds_target(target):
        # RDS keeps the realtime kind itself (point-in-time recovery); the catalog holds the daily backups.
        return rds_selection(target, request.domains, request.at, request.point, entries), list(entries)
    realtime = any(entry.kind == "realtime" for entry in entries)
    if realtime:
        # A realtime backup reaches to the end of its shipped WAL, not just its objective.
        entries = with_coverage(entries, realtime_stores(target))
    selection = select_backups(
        entries, request.domains, at=request.at, restore_point=request.point, objectives=target.objectives
    )
    if realtime and request.point:
        selection = _realtime_points(target, request, entries, selection, request.point)
    return selection, list(entries)


def verified_entries(
    target: Target, domains: Sequence[Domain], progress: Callable[[str], None] = lambda _: None
) -> list[CatalogEntry]:
    """Every candidate backup of `domains`, both copies verified now."""
    catalog = catalog_for(target)
    progress(f"checking both copies of the candidate backups of {', '.join(domains)}")
    return [catalog.verify(entry.backup_id) for domain in domains for entry in catalog.entries(domain)]


def cut_of(choice: DomainChoice, entries: Sequence[CatalogEntry], moment: datetime | None) -> Cut:
    """The moment a chosen backup puts its domain back to. Pure.

    A daily backup: its position (and the rows per table its manifest counted). A realtime one: the
    requested time or restore point's time (`moment`), else the end of its shipped WAL. An RDS restore:
    the time its id names (recovery.restore.rds_source)."""
    if is_rds_choice(choice.backup_id):
        return rds_cut(choice)
    entry = next(entry for entry in entries if entry.backup_id == choice.backup_id)
    manifest = entry.manifest_of(choice.copy)
    assert manifest is not None, "a chosen copy has a trusted manifest"
    if choice.kind == "daily":
        rows = {table.name: table.rows for table in manifest.tables if not table.name.startswith("file:")}
        return Cut(choice.domain, choice.backup_id, manifest.source.at, rows)
    at = moment or entry.covered_until or manifest.source.at
    return Cut(choice.domain, choice.backup_id, at)


def realtime_point_time(target: Target, point: str) -> datetime | None:
    """When realtime restore point `point` was taken (from whichever copy has it), else None."""
    stores = realtime_stores(target)
    for store in stores.both:
        with contextlib.suppress(IntegrityError):
            found = read_restore_point(store, check_restore_point_name(point))
            if found is not None:
                return found.created_at
    return None


def _realtime_points(
    target: Target, request: RestoreRequest, entries: Sequence[CatalogEntry], selection: Selection, point: str
) -> Selection:
    """Realtime restore points live beside the WAL, not in manifests: ask for them first per domain."""
    stores = realtime_stores(target)
    for domain in request.domains:
        if not any(entry.domain == domain and entry.kind == "realtime" for entry in entries):
            continue
        found = choose_for_restore_point(entries, domain, point, stores)
        if isinstance(found, DomainChoice):
            selection = with_choice(selection, found)
        elif (daily := selection.choice(domain)) is not None:
            why = f"{found.reason}; so {daily.reason}"
            selection = with_choice(
                selection, DomainChoice(daily.domain, daily.backup_id, daily.kind, daily.copy, why)
            )
    return selection


def chosen_manifests(entries: Sequence[CatalogEntry], selection: Selection) -> dict[str, Manifest]:
    """The manifests of the chosen backups, by backup id. Pure."""
    by_id = {entry.backup_id: entry for entry in entries}
    found = {
        choice.backup_id: by_id[choice.backup_id].manifest_of(choice.copy)
        for choice in selection.choices
        if choice.backup_id in by_id
    }
    return {backup_id: manifest for backup_id, manifest in found.items() if manifest is not None}


def manifests_of(catalog: Catalog, choices: Sequence[DomainChoice]) -> dict[str, Manifest]:
    """The manifests of already chosen backups, read again (not verified again: a copy that changed
    since fails while it is read, and the restore chooses again then)."""
    found: dict[str, Manifest] = {}
    for choice in choices:
        # The chosen copy's own manifest: that copy is read with it and no other.
        manifest = catalog.entry(BackupName.parse(choice.backup_id)).manifest_of(choice.copy)
        if manifest is None:
            raise IntegrityError(
                f"the manifest of {choice.backup_id} can no longer be read; nothing was changed"
            )
        found[choice.backup_id] = manifest
    return found


def refusal_error(selection: Selection) -> PreconditionFailed | IntegrityError:
    """The one line for a selection that refused a domain (the first refusal; all are journaled).

    Damaged backups (every candidate fails verification) are an integrity error, anything else (no
    backup, no restore point, a time outside every backup) a refusal."""
    first = selection.refusals[0]
    if first.damaged:
        return IntegrityError(
            f"cannot restore {first.domain}: {first.reason}; nothing was changed",
            code="restore.backups_damaged",
        )
    more = f" (and {len(selection.refusals) - 1} more domains refused)" if len(selection.refusals) > 1 else ""
    return PreconditionFailed(
        f"cannot restore {first.domain}: {first.reason}{more}; nothing was changed", code="restore.no_backup"
    )


def mark_damaged(
    entries: Sequence[CatalogEntry], backup_id: str, copy: str, detail: str
) -> list[CatalogEntry]:
    """The entries with one copy of one backup marked damaged (it failed while being read). Pure."""
    damaged = CopyStatus(CopyState.DAMAGED, detail)
    return [
        (replace(entry, local=damaged) if copy == "local" else replace(entry, remote=damaged))
        if entry.backup_id == backup_id
        else entry
        for entry in entries
    ]


def with_choice(selection: Selection, choice: DomainChoice) -> Selection:
    """The selection with `choice` replacing whatever was decided for its domain. Pure."""
    return Selection(
        (*(c for c in selection.choices if c.domain != choice.domain), choice),
        tuple(r for r in selection.refusals if r.domain != choice.domain),
    )


def schema_versions_agree(manifests: Sequence[Manifest]) -> str | None:
    """A sentence when the chosen backups were taken at different schema versions, else None. Pure."""
    versions = sorted({manifest.schema_version for manifest in manifests})
    if len(versions) > 1:
        return (
            f"the chosen backups were taken at different schema versions ({', '.join(versions)}); "
            "restore them separately or choose a restore point"
        )
    return None


def parse_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--at {text!r} is not a time; use ISO 8601 with a zone, e.g. 2026-11-25T10:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise UsageError("the --at time needs a time zone, e.g. 2026-11-25T10:00:00Z")
    return moment.astimezone(UTC)


def new_restore_id(now: datetime) -> str:
    return f"{now:%Y%m%d%H%M%S}_{os.urandom(2).hex()}"


def recovery_groups(
    choices: Sequence[DomainChoice], manifests: Mapping[str, Manifest]
) -> list[tuple[DomainChoice, tuple[str, ...]]]:
    """The realtime choices grouped by the base backup they recover, with the domains each serves. Pure.

    The orders and transactions realtime backups of one base backup hold the same cluster (same source
    position): recovering it once serves both domains, instead of two scratch clusters replaying the same
    WAL side by side. Choices from different copies still share one recovery (same bytes, both verified).
    """
    groups: dict[tuple[str, str], tuple[DomainChoice, list[str]]] = {}
    for choice in choices:
        if choice.kind != "realtime":
            continue
        manifest = manifests.get(choice.backup_id)
        source = (str(manifest.source.at), manifest.source.lsn or "") if manifest else (choice.backup_id, "")
        groups.setdefault(source, (choice, []))[1].append(choice.domain)
    return [(first, tuple(domains)) for first, domains in groups.values()]


@dataclass(frozen=True)
class ScopePlan:
    """The scope decided before any work (with the rows written after each restored domain's cut) and
    the backups chosen for it."""

    findings: ScopeFindings
    selection: Selection

    @property
    def decision(self) -> ScopeDecision:
        return self.findings.decision


def plan_scope(
    target: Target,
    request: RestoreRequest,
    policy: ScopePolicy,
    progress: Callable[[str], None] = lambda _: None,
) -> ScopePlan:
    """Choose backups for the requested domains, and for every domain the scope adds, then decide the
    scope on live's rows (`recovery.restore.scope.find_scope`). Read only."""
    moment = request.at
    if moment is None and request.point is not None:
        moment = realtime_point_time(target, request.point)
    entries = verified_entries(target, request.domains, progress)
    chosen: list[Selection] = []

    def cuts_for(domains: tuple[Domain, ...]) -> dict[Domain, Cut]:
        nonlocal entries
        known = {entry.domain for entry in entries}
        entries = [*entries, *verified_entries(target, [d for d in domains if d not in known], progress)]
        selection, entries = choose(target, replace(request, domains=domains), entries)
        if selection.refused:
            raise refusal_error(selection)
        chosen.append(selection)
        progress(f"counting rows of live that reference {', '.join(domains)} newer than the backup")
        return {choice.domain: cut_of(choice, entries, moment) for choice in selection.choices}

    with dbdriver.connect(target.writable.database, autocommit=True) as conn:
        findings = find_scope(LiveRows(conn), request.domains, cuts_for, policy)
    kept = set(findings.decision.domains)
    last = chosen[-1]
    return ScopePlan(findings, Selection(tuple(c for c in last.choices if c.domain in kept), ()))
