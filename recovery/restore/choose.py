"""Choosing what a restore reads: candidates checked in both copies, `select_backups` per domain (with
realtime restore points asked for beside the WAL), the refusal as one error, and the pure helpers the
fallback uses when a chosen copy fails while it is read."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from recovery.backup.catalog import Catalog, CatalogEntry, CopyState, CopyStatus, catalog_for
from recovery.backup.manifest import Manifest
from recovery.backup.naming import BackupName, Domain
from recovery.backup.realtime import realtime_stores, with_coverage
from recovery.errors import IntegrityError, PreconditionFailed, UsageError
from recovery.restore.pitr import choose_for_restore_point
from recovery.restore.rds_source import is_rds_target, rds_selection
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
        catalog = catalog_for(target)
        progress("checking both copies of the candidate backups")
        entries = [
            catalog.verify(entry.backup_id) for domain in request.domains for entry in catalog.entries(domain)
        ]
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
    chosen = {choice.backup_id for choice in selection.choices}
    found = {entry.backup_id: entry.manifest for entry in entries if entry.backup_id in chosen}
    return {backup_id: manifest for backup_id, manifest in found.items() if manifest is not None}


def manifests_of(catalog: Catalog, choices: Sequence[DomainChoice]) -> dict[str, Manifest]:
    """The manifests of already chosen backups, read again (not verified again: a copy that changed
    since fails while it is read, and the restore chooses again then)."""
    found: dict[str, Manifest] = {}
    for choice in choices:
        manifest = catalog.entry(BackupName.parse(choice.backup_id)).manifest
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
