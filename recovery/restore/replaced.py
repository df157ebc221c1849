"""What restores set aside (a database `<live>_replaced_<id>`, or a schema `replaced_<id>` of live: the
way back after a swap) and which of it may be dropped: never what a running or interrupted run still
needs (a restore that has not recorded its end, a rollback whose carry-over reads the failed database),
as their journals say."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from recovery.drivers import db as dbdriver
from recovery.engine import is_running, journal_path, read_journal, run_ids, summarize
from recovery.engine.result import NotAJournal, RunResult
from recovery.restore.database import replaced_prefix, restore_id_for
from recovery.restore.table_swap import replaced_schemas
from recovery.targets.model import Target

# Runbooks whose unfinished runs name a replaced database, and how each names its restore id.
RESTORE_RUNBOOK = "restore"
ROLLBACK_RUNBOOK = "rollback"


def replaced_databases(target: Target) -> list[str]:
    """Restore ids whose replaced data is still kept, sorted: a database `<live>_replaced_<id>` (a whole
    database swapped in) or a schema `replaced_<id>` of live (its tables swapped in)."""
    db = target.writable.database
    prefix = replaced_prefix(db.name)
    with dbdriver.connect(db, dbname="postgres", autocommit=True) as conn:
        names = dbdriver.databases_with_prefix(conn, prefix)
    with dbdriver.connect(db, autocommit=True) as conn:
        schemas = replaced_schemas(conn)
    return sorted({name[len(prefix) :] for name in names} | set(schemas))


def restore_id_of(run: RunResult) -> str | None:
    """The restore id an unfinished run works on, or None when it names none. Pure."""
    if run.runbook == RESTORE_RUNBOOK:
        value = run.params.get("restore_id")
        return str(value) if value else None
    if run.runbook == ROLLBACK_RUNBOOK:
        found = next((step.output for step in run.steps if step.name == "find-upgrade" and step.output), None)
        upgrade_run = (found or {}).get("upgrade_run") or run.params.get("upgrade_run")
        return restore_id_for(str(upgrade_run)) if upgrade_run else None
    return None


def needed_by_unfinished_runs(target: Target) -> dict[str, str]:
    """Restore id -> the run that still needs its replaced database (running or interrupted)."""
    needed: dict[str, str] = {}
    for run_id in run_ids(target.state_dir):
        path = journal_path(target.state_dir, run_id)
        try:
            run = summarize(read_journal(path), running=is_running(path))
        except NotAJournal:
            continue
        if run.status not in ("running", "interrupted"):
            continue
        restore_id = restore_id_of(run)
        if restore_id is not None:
            needed.setdefault(restore_id, run.run_id)
    return needed


@dataclass(frozen=True)
class ReplacedPlan:
    """Which replaced databases a prune drops, and which it keeps with the reason."""

    drop: tuple[str, ...]  # restore ids
    keep: Mapping[str, str]  # restore id -> reason


def plan_replaced(found: Sequence[str], confirmed: Sequence[str], needed: Mapping[str, str]) -> ReplacedPlan:
    """Drop what exists, was confirmed and no unfinished run needs. Pure."""
    keep: dict[str, str] = {}
    drop: list[str] = []
    wanted = set(confirmed)
    for restore_id in found:
        if restore_id in needed:
            keep[restore_id] = f"run {needed[restore_id]} is unfinished and still needs it"
        elif restore_id not in wanted:
            keep[restore_id] = "it appeared after the confirmation; run the prune again to drop it"
        else:
            drop.append(restore_id)
    return ReplacedPlan(tuple(drop), keep)
