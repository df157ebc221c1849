"""Restoring chosen backups beside live: every chosen copy opened with its own manifest and data key,
realtime choices recovered into scratch clusters, then the chosen domains' tables restored into a
staging schema of live (`restore_into_schema`), or, when live is at another schema version than the
backup, a whole database rebuilt beside live (`restore_beside`). A chosen copy that fails while it is
opened or read is marked damaged and the choice is made again (the other copy, an older backup, the
daily kind): `with_fallbacks`.
On RDS a realtime choice is recovered into a scratch instance instead (recovery.restore.rds_source)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TypeVar

from recovery.backup.catalog import Catalog, CatalogEntry, catalog_for
from recovery.drivers import db as dbdriver
from recovery.errors import IntegrityError, KeyUnavailable, PreconditionFailed
from recovery.restore.choose import RestoreRequest, choose, mark_damaged, recovery_groups, refusal_error
from recovery.restore.database import FromDatabase, RestoredDatabase, restore_beside
from recovery.restore.pitr import recover_to
from recovery.restore.rds_source import is_rds_choice, rds_recover_to, rds_sources
from recovery.restore.selection import DomainChoice, Selection
from recovery.restore.sources import CopyReadFailed, open_copies
from recovery.restore.staged import STAGING_NEEDS_SAME_VERSION, StagedTables, restore_into_schema
from recovery.targets.model import Target
from recovery.verify.restored import recovered_fingerprints

MAX_FALLBACKS = 4
T = TypeVar("T")


@dataclass(frozen=True)
class Restored:
    """The copy beside live, the choices it was made from, and the recovered clusters' fingerprints."""

    restored: RestoredDatabase | StagedTables  # tables in a staging schema of live, or a whole database
    selection: Selection
    recovered_fingerprints: Mapping[str, Mapping[str, object]]


def restore_with_fallbacks(
    target: Target,
    request: RestoreRequest,
    restore_id: str,
    selection: Selection,
    progress: Callable[[str], None],
    note: Callable[[str], None],
) -> Restored:
    """Restore `selection` (made and verified by the caller) beside live, falling back as
    `with_fallbacks` says when a chosen copy fails while it is opened or read."""
    catalog = catalog_for(target)
    return with_fallbacks(
        selection,
        lambda chosen: _restore_once(target, request, restore_id, catalog, chosen, progress),
        candidates=lambda: choose(target, request, progress=progress)[1],
        choose_from=lambda entries: choose(target, request, entries)[0],
        note=note,
    )


def with_fallbacks(
    selection: Selection,
    attempt: Callable[[Selection], T],
    *,
    candidates: Callable[[], Sequence[CatalogEntry]],
    choose_from: Callable[[Sequence[CatalogEntry]], Selection],
    note: Callable[[str], None],
) -> T:
    """Run `attempt` on `selection`; when a chosen copy fails (`CopyReadFailed`, or an integrity error
    blamed on the first realtime choice, else the first), check the candidates again (`candidates`, once),
    mark that copy damaged, choose again (`choose_from`) and retry. A selection that refuses (no copy
    left) is the one error raised; so is running out of tries."""
    entries: list[CatalogEntry] | None = None
    for _attempt in range(MAX_FALLBACKS):
        try:
            return attempt(selection)
        except IntegrityError as exc:
            if isinstance(exc, KeyUnavailable) and not isinstance(exc, CopyReadFailed):
                raise  # no key source at all: no copy can help
            culprit = _culprit(exc, selection)
            note(
                f"{culprit.backup_id} ({culprit.copy} copy) failed while being read: {exc.message}; "
                "choosing again"
            )
            if entries is None:
                entries = list(candidates())
            entries = mark_damaged(entries, culprit.backup_id, culprit.copy, exc.message)
            selection = choose_from(entries)
            if selection.refused:
                raise refusal_error(selection) from None
            for choice in selection.choices:
                note(f"{choice.domain}: now {choice.backup_id} ({choice.copy} copy): {choice.reason}")
    raise IntegrityError(
        f"every candidate copy failed while being read ({MAX_FALLBACKS} tries); nothing was changed"
    )


def _culprit(exc: IntegrityError, selection: Selection) -> DomainChoice:
    if isinstance(exc, CopyReadFailed):
        named = next(
            (c for c in selection.choices if c.backup_id == exc.backup_id and c.copy == exc.copy),
            None,
        )
        if named is not None:
            return named
    return next((c for c in selection.choices if c.kind == "realtime"), selection.choices[0])


def _restore_once(
    target: Target,
    request: RestoreRequest,
    restore_id: str,
    catalog: Catalog,
    selection: Selection,
    progress: Callable[[str], None],
) -> Restored:
    """Recover the realtime choices into scratch clusters (kept until the load ends), then restore beside."""
    db = target.writable.database
    bin_dir = dbdriver.pg_bin(db)
    # Before anything is created: each chosen copy's own manifest, authenticated, and its data key. RDS
    # restores have neither: they are recovered into a scratch instance.
    rds = [choice for choice in selection.choices if is_rds_choice(choice.backup_id)]
    opened = open_copies(catalog, [choice for choice in selection.choices if choice not in rds])
    manifests = {backup_id: copy.manifest for backup_id, copy in opened.items()}
    with ExitStack() as clusters:
        recovered: dict[str, FromDatabase] = {}
        prints: dict[str, dict[str, object]] = {}
        for choice, domains in recovery_groups(selection.choices, manifests):
            progress(f"recovering {choice.backup_id} into a scratch cluster (for {', '.join(domains)})")
            try:
                recover = rds_recover_to if is_rds_choice(choice.backup_id) else recover_to
                conninfo = clusters.enter_context(
                    recover(target, choice, at=request.at, restore_point=request.point)
                )
            except IntegrityError as exc:  # its WAL or base backup: this copy's, the other may do
                raise CopyReadFailed(exc, choice) from exc
            # The moment recovered to has no fingerprints in any manifest: take them from the recovered
            # cluster itself, so the copy beside live can be checked table by table against it.
            prints.update(recovered_fingerprints(conninfo, domains))
            recovered.update({domain: FromDatabase(conninfo, bin_dir) for domain in domains})
        sources = rds_sources(list(opened.values()), recovered, rds)
        what = ", ".join(choice.domain for choice in selection.choices)

        def restore(into: Callable[..., RestoredDatabase | StagedTables]) -> RestoredDatabase | StagedTables:
            return into(
                dbdriver.conninfo(db, dbname="postgres"),
                bin_dir,
                live_db=db.name,
                restore_id=restore_id,
                schema_stream=sources.schema,
                domain_streams=sources.domains,
            )

        try:
            progress(f"restoring {what} into a staging schema of {db.name}")
            restored = restore(restore_into_schema)
        except PreconditionFailed as exc:
            if exc.code != STAGING_NEEDS_SAME_VERSION:
                raise
            # Tables of another schema version cannot stand beside live's: rebuild the whole database
            # from the backup instead (every domain, swapped in by renaming the databases).
            progress(f"{exc.message}; restoring {what} into a whole database beside {db.name} instead")
            restored = restore(restore_beside)
        return Restored(restored, selection, prints)
