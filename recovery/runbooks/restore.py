"""The restore runbook: chosen domains back from their backups, beside live, verified, then swapped in.

Steps: 1 scope, before any work (the live database answers; backups chosen for the requested domains,
both copies checked; the rows of domains kept from live that would reference rows newer than a restored
domain's backup are counted and the scope widened or the restore refused, `recovery.restore.scope`; the
rows written after the backups' moment are counted); 2 select (the manifests of the chosen backups read
again, schema versions compared); 3 restore beside live (`restore_beside`; each chosen copy is opened
with its own manifest and data key first, and a copy that fails then or while it is read is marked
damaged and the selection falls back to the next candidate); 4 verify the restored copy (fingerprints
against the manifests, business invariants); 5 fence the service (playbooks/restore.yml), 6 catch up:
rows written to the domains copied from live since the copy was cut are carried over
(recovery.restore.catchup), 7 swap in, 8 carry over the rows of the restored domains written after the
backups' moment (or set them aside, `--set-aside`), orders that do not match their lines listed for a
person, 9 start the service and run the smoke test, 10 record.

The seam to other kinds of backup: a choice becomes a `Source` per domain (`sources_for`): a daily
backup's `dump` section streamed out of the codec, or, for a realtime choice, whatever point-in-time
recovery provides (a `FromDatabase` over a recovered scratch cluster) once it exists.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from recovery.backup.catalog import catalog_for
from recovery.backup.naming import Domain, parse_domain
from recovery.drivers import db as dbdriver
from recovery.drivers.ansible import require_success, run_files_dir, run_playbook
from recovery.engine import Runbook, RunContext, Step, TypedOutput, register_runbook
from recovery.engine.model import thaw
from recovery.errors import ExternalFailure, PreconditionFailed, RecoveryError, UsageError, VerificationFailed
from recovery.paths import PLAYBOOKS_DIR
from recovery.release.gates import observe_host_health
from recovery.restore import fence
from recovery.restore.beside import restore_with_fallbacks
from recovery.restore.carryover import RESTORE_CARRIES, carry_over
from recovery.restore.catchup import catch_up, report_lines
from recovery.restore.choose import (
    RestoreRequest,
    ScopePlan,
    choose,
    chosen_manifests,
    manifests_of,
    parse_at,
    plan_scope,
    refusal_error,
    schema_versions_agree,
)
from recovery.restore.database import (
    RestoredDatabase,
    discard_restored,
    drop_replaced,
    restore_names,
    swap_in,
)
from recovery.restore.handover import write_handover
from recovery.restore.rds_source import is_rds_choice
from recovery.restore.replaced import needed_by_unfinished_runs, plan_replaced, replaced_databases
from recovery.restore.scope import DEFAULT_SCOPE_POLICY, SCOPE_POLICIES, after_cut_sentence
from recovery.restore.selection import DomainChoice, Selection
from recovery.restore.staged import StagedTables, discard_staged, staging_names
from recovery.restore.table_swap import drop_replaced_tables, swap_tables_in
from recovery.runbooks.replay_intake import replay_intake_step
from recovery.targets.model import Database, Target
from recovery.verify.domains import tables_for
from recovery.verify.reports import failure_line
from recovery.verify.restored import check_restored_copy, expectations_for
from recovery.verify.smoke import smoke_test

RESTORE_PLAYBOOK = PLAYBOOKS_DIR / "restore.yml"
UNFENCED_HEALTH_TIMEOUT_S = 60.0


# Step results ------------------------------------------------------------------------------------------


class ChoiceRecord(TypedOutput):
    domain: str
    backup_id: str
    kind: str
    copy_label: str = Field(alias="copy")  # "copy" in JSON; the attribute name would hide BaseModel.copy
    reason: str

    @classmethod
    def of(cls, choice: DomainChoice) -> ChoiceRecord:
        return cls(
            domain=choice.domain,
            backup_id=choice.backup_id,
            kind=choice.kind,
            copy=choice.copy,  # type: ignore[call-arg]  # the field's alias
            reason=choice.reason,
        )

    def choice(self) -> DomainChoice:
        return DomainChoice(
            parse_domain(self.domain),
            self.backup_id,
            "realtime" if self.kind == "realtime" else "daily",
            "remote" if self.copy_label == "remote" else "local",
            self.reason,
        )


class Selected(TypedOutput):
    choices: tuple[ChoiceRecord, ...]


class Scoped(TypedOutput):
    """The scope step's result. Defaults let a run journaled by an older release resume (its scope
    output had the names and the requested domains only)."""

    live: str = ""
    scratch: str = ""
    replaced: str = ""
    domains: tuple[str, ...] = ()  # what is restored: the requested domains, or the widened scope
    requested: tuple[str, ...] = ()
    decision: dict[str, Any] = {}
    choices: tuple[ChoiceRecord, ...] = ()
    cuts: dict[str, str] = {}  # domain -> the moment it goes back to (ISO)
    after_target: tuple[dict[str, Any], ...] = ()
    after_target_rows: int = 0
    to_person: int = 0
    after_target_plan: str = ""


class RestoredBeside(TypedOutput):
    """The restore-beside step's result. Defaults let a run journaled by an older release resume."""

    scratch: str = ""  # the whole database rebuilt beside live; empty when the tables were staged
    staging_schema: str = ""  # the schema of live the restored tables are in, until the swap
    tables: tuple[str, ...] = ()  # the tables a staged restore swaps in
    from_backup: tuple[str, ...] = ()
    from_live: tuple[str, ...] = ()
    # Where the domains copied from live were cut: `catch-up-live` carries over what came after.
    live_tables: tuple[str, ...] = ()
    live_snapshot: str | None = None
    schema_version: int | None = None
    choices: tuple[ChoiceRecord, ...] = ()
    recovered_fingerprints: dict[str, dict[str, Any]] = {}
    steps: dict[str, float] = {}


class Swapped(TypedOutput):
    live: str
    replaced: str  # the database live was renamed to, or the schema of live its tables were moved to
    swapped_at: str | None = None
    replaced_kind: str = "database"  # "schema" when the tables were swapped inside live


# Steps -----------------------------------------------------------------------------------------------


def _db(target: Target) -> Database:
    return target.writable.database


def _admin(target: Target) -> str:
    return dbdriver.conninfo(_db(target), dbname="postgres")


def requested(params: Mapping[str, Any]) -> RestoreRequest:
    """What the operator asked for, from the run's params."""
    point = params.get("point")
    return RestoreRequest(
        domains=tuple(parse_domain(str(domain)) for domain in params["domains"]),
        at=parse_at(params.get("at")),
        point=str(point) if point else None,
    )


def _request(ctx: RunContext) -> RestoreRequest:
    """The request with the domains the scope step decided on (a widened scope restores more)."""
    asked = requested(ctx.params)
    scoped = ctx.output("scope", Scoped).domains if "scope" in ctx.outputs else ()
    if not scoped:
        return asked
    return replace(asked, domains=tuple(parse_domain(domain) for domain in scoped))


def _live_answers(db: Database) -> None:
    try:
        with dbdriver.connect(db, dbname="postgres", autocommit=True) as conn:
            exists = dbdriver.database_exists(conn, db.name)
    except ExternalFailure as exc:
        raise PreconditionFailed(
            f"{exc.message}; nothing was changed", code="restore.database_unreachable"
        ) from None
    if not exists:
        raise PreconditionFailed(f"the live database {db.name} does not exist on {db.address}:{db.port}")


def scope_plan(target: Target, params: Mapping[str, Any], progress: Callable[[str], None]) -> ScopePlan:
    """Before any work: the live database answers, the scope (widened or refused), the backups for it
    and the rows written after their moment. `--dry-run` shows it; the scope step journals it."""
    _live_answers(_db(target))
    policy = str(params.get("scope") or DEFAULT_SCOPE_POLICY)
    planned = plan_scope(target, requested(params), "widen" if policy == "widen" else "strict", progress)
    if planned.decision.action == "refuse":
        raise PreconditionFailed(planned.decision.reason, code="restore.scope_orphans")
    return planned


def set_aside_in(live_db: str, restore_id: str) -> str:
    """Where a restore keeps live's replaced tables (a staged restore: a schema of live), for messages."""
    return f"schema {staging_names(live_db, restore_id).replaced} of {live_db}"


def after_target_plan(planned: ScopePlan, params: Mapping[str, Any], replaced: str) -> str:
    return after_cut_sentence(
        planned.findings.after,
        carry=bool(params.get("carry_over", True)),
        to_person=planned.findings.to_person,
        replaced=replaced,
    )


def _scope(ctx: RunContext) -> Scoped:
    names = restore_names(_db(ctx.target).name, str(ctx.params["restore_id"]))
    planned = scope_plan(ctx.target, ctx.params, ctx.progress)
    ctx.note(f"scope: {planned.decision.reason}")
    for line in planned.findings.notes:
        ctx.note(line)
    sentence = after_target_plan(planned, ctx.params, set_aside_in(names.live, names.restore_id))
    ctx.note(sentence)
    return Scoped(
        live=names.live,
        scratch=names.scratch,
        replaced=names.replaced,
        domains=planned.decision.domains,
        requested=requested(ctx.params).domains,
        decision=planned.decision.to_json(),
        choices=tuple(ChoiceRecord.of(choice) for choice in planned.selection.choices),
        cuts={cut.domain: cut.at.isoformat() for cut in planned.findings.cuts},
        after_target=tuple(item.to_json() for item in planned.findings.after),
        after_target_rows=planned.findings.after_rows,
        to_person=planned.findings.to_person,
        after_target_plan=sentence,
    )


def _select_step(ctx: RunContext) -> Selected:
    scoped = ctx.output("scope", Scoped)
    catalog = catalog_for(ctx.target)
    if scoped.choices:
        # Chosen by the scope step from copies it verified a moment ago; read, not verified again.
        selection = Selection(tuple(record.choice() for record in scoped.choices), ())
        # RDS restores have no manifest (recovery.restore.rds_source).
        manifests = manifests_of(catalog, [c for c in selection.choices if not is_rds_choice(c.backup_id)])
    else:  # a run journaled before the scope step chose
        selection, entries = choose(ctx.target, _request(ctx), progress=ctx.progress)
        for refusal in selection.refusals:
            ctx.note(f"{refusal.domain}: refused: {refusal.reason}")
        if selection.refused:
            raise refusal_error(selection)
        manifests = chosen_manifests(entries, selection)
    problem = schema_versions_agree(list(manifests.values()))
    if problem:
        raise PreconditionFailed(problem, code="restore.schema_mismatch")
    for choice in selection.choices:
        ctx.note(f"{choice.domain}: {choice.backup_id} ({choice.kind}, {choice.copy} copy): {choice.reason}")
    return Selected(choices=tuple(ChoiceRecord.of(choice) for choice in selection.choices))


def _restore_step(ctx: RunContext) -> RestoredBeside:
    """Restore what the select step chose (and verified): its copies are not verified again here; one
    that changed since fails while it is read, and the choice is made again then."""
    chosen = ctx.output("select", Selected)
    selection = Selection(tuple(record.choice() for record in chosen.choices), ())
    done = restore_with_fallbacks(
        ctx.target, _request(ctx), str(ctx.params["restore_id"]), selection, ctx.progress, ctx.note
    )
    restored = done.restored
    if isinstance(restored, StagedTables):
        return RestoredBeside(
            recovered_fingerprints=thaw(done.recovered_fingerprints),
            staging_schema=restored.schema,
            tables=restored.tables,
            from_backup=restored.domains,
            schema_version=restored.schema_version,
            choices=tuple(ChoiceRecord.of(choice) for choice in done.selection.choices),
            steps={step.step: step.seconds for step in restored.steps},
        )
    return RestoredBeside(
        recovered_fingerprints=thaw(done.recovered_fingerprints),
        scratch=restored.name,
        from_backup=restored.from_backup,
        from_live=restored.from_live,
        live_tables=restored.live_copy.tables if restored.live_copy else (),
        live_snapshot=restored.live_copy.snapshot if restored.live_copy else None,
        schema_version=restored.schema_version,
        choices=tuple(ChoiceRecord.of(choice) for choice in done.selection.choices),
        steps={step.step: step.seconds for step in restored.steps},
    )


def _verify_step(ctx: RunContext) -> dict[str, object]:
    target = ctx.target
    db = _db(target)
    beside = ctx.output("restore-beside", RestoredBeside)
    expectations = expectations_for(
        [record.choice() for record in beside.choices],
        catalog_for(target, with_keys=False),
        beside.recovered_fingerprints,
    )
    for line in expectations.notes:
        ctx.note(line)
    staged = beside.staging_schema
    reports, invariant_report = check_restored_copy(
        lambda: dbdriver.connect(db, dbname=db.name if staged else beside.scratch, autocommit=True),
        expectations.fingerprints,
        schema=staged or "public",
    )
    lines = [failure_line(report) for report in reports] + [failure_line(invariant_report)]
    problems = [*expectations.problems, *(line for line in lines if line)]
    if problems:
        _discard(ctx)
        raise VerificationFailed(f"{problems[0]}; the restored copy was dropped, live is unchanged")
    return {
        "fingerprints": {name: fp.rows for name, fp in expectations.fingerprints.items()},
        "invariants": "passed",
    }


def _staged(ctx: RunContext) -> RestoredBeside | None:
    """The restore-beside output when its tables were staged in a schema of live (None: a database)."""
    beside = ctx.output("restore-beside", RestoredBeside)
    return beside if beside.staging_schema else None


def _discard(ctx: RunContext) -> bool:
    """Drop the restored copy (its staging schema, or its database); live is not touched."""
    db = _db(ctx.target)
    restore_id = str(ctx.params["restore_id"])
    if _staged(ctx):
        return discard_staged(_admin(ctx.target), live_db=db.name, restore_id=restore_id)
    return discard_restored(_admin(ctx.target), live_db=db.name, restore_id=restore_id)


def _service(ctx: RunContext, phase: str) -> None:
    result = run_playbook(
        ctx.target.inventory,
        str(RESTORE_PLAYBOOK),
        extravars={"order_restore_service_phase": phase},
        private_data_dir=run_files_dir(ctx.target.state_dir, ctx.run_id, f"service-{phase}"),
    )
    require_success(result)


def _fence_step(ctx: RunContext) -> dict[str, object]:
    """Keep the service's database role out and end its sessions; the service keeps answering, so with
    degraded mode its orders go to the intake queue meanwhile (replayed by the last step). A service
    without a role of its own to fence is stopped instead."""
    db = _db(ctx.target)
    try:
        role = fence.service_role(db)
    except PreconditionFailed as exc:
        ctx.note(f"cannot fence: {exc.message}; stopping the service on every host instead")
        ctx.progress("stopping the order service on every app host")
        _service(ctx, "stop")
        return {"stopped": [host.name for host in ctx.target.hosts()]}
    fenced = fence.fence(db, role)
    ctx.note(
        f"role {role} may not log in until the swap is done ({fenced.terminated_sessions} sessions ended)"
    )
    return {"role": role, "terminated_sessions": fenced.terminated_sessions, "stopped": []}


def _unfence(ctx: RunContext) -> None:
    """Let the service back in: lift its role's fence, or start it where it was stopped."""
    role = (ctx.outputs.get("fence-service") or {}).get("role")
    if not role:
        _service(ctx, "start")
        return
    fence.lift(_db(ctx.target), str(role))
    deadline = time.monotonic() + UNFENCED_HEALTH_TIMEOUT_S
    while not all(observe_host_health(host, timeout=2.0).healthy for host in ctx.target.hosts()):
        if time.monotonic() > deadline:
            raise ExternalFailure(
                f"the order service did not answer /health 200 within {UNFENCED_HEALTH_TIMEOUT_S:.0f} s "
                "of being let back into its database; check its log"
            )
        time.sleep(0.2)


def _catch_up_step(ctx: RunContext) -> dict[str, object]:
    """With the service fenced: rows written to the domains copied from live since the copy was cut.

    Idempotent: a rerun takes the same rows again and finds them equal. On failure the service is started
    again on live (unchanged; the run is over: start a new restore) instead of being left stopped with
    no way forward."""
    db = _db(ctx.target)
    beside = ctx.output("restore-beside", RestoredBeside)
    tables = list(beside.live_tables)
    snapshot = beside.live_snapshot
    if beside.staging_schema:
        return {"skipped": "nothing was copied from live: the restored tables are swapped into live itself"}
    if not tables:
        return {"skipped": "nothing was copied from live: every domain came from its backup"}
    if snapshot is None:
        reason = (
            "the live copy recorded no snapshot (PostgreSQL before 13, or a run journaled before the "
            "catch-up existed): rows written to live's other domains during the restore are not carried over"
        )
        ctx.note(reason)
        return {"skipped": reason}
    names = restore_names(db.name, str(ctx.params["restore_id"]))
    with dbdriver.connect(db, dbname="postgres", autocommit=True) as conn:
        swapped = not dbdriver.database_exists(conn, names.scratch) and dbdriver.database_exists(
            conn, names.replaced
        )
    if swapped:
        ctx.note(f"{names.replaced} exists: the copy was swapped in after an earlier catch-up")
        return {"skipped": "the restored copy was already swapped in"}
    ctx.progress(f"carrying rows written to {', '.join(tables)} since the copy over into {names.scratch}")
    try:
        report = catch_up(
            dbdriver.conninfo(db), dbdriver.conninfo(db, dbname=names.scratch), tables, str(snapshot)
        )
    except RecoveryError as exc:
        said = exc.message.removesuffix("; the restored copy was not changed")
        raise type(exc)(f"{said}; {_restart_after_catch_up(ctx)}", code=exc.code) from None
    except Exception:
        _restart_after_catch_up(ctx)
        raise
    for line in report_lines(report).values():
        ctx.note(line)
    return {"snapshot": str(snapshot), **report.to_json()}


def _restart_after_catch_up(ctx: RunContext) -> str:
    """After a failed catch-up (the run ends there: a failed run is not resumed): drop the copy, which
    cannot be swapped in, and start the service again on live. The sentence saying what state remains."""
    dropped = "the restored copy was dropped"
    try:
        _discard(ctx)
    except RecoveryError as exc:
        dropped = f"dropping the restored copy failed ({exc.message})"
    ctx.progress("the catch-up failed: letting the order service back into live")
    try:
        _unfence(ctx)
    except RecoveryError as exc:
        return (
            f"{dropped}; starting the order service again failed too ({exc.message}): start it by hand; "
            "live is unchanged"
        )
    return f"{dropped}; the order service was started again on live, which is unchanged"


def _swap_step(ctx: RunContext) -> Swapped:
    db = _db(ctx.target)
    staged = _staged(ctx)
    if staged is not None:
        swap = swap_tables_in(
            _admin(ctx.target),
            live_db=db.name,
            restore_id=str(ctx.params["restore_id"]),
            tables=staged.tables,
        )
        if swap.already_done:
            ctx.note(f"schema {swap.set_aside_in} exists: the swap was done before this attempt")
        return Swapped(
            live=db.name,
            replaced=swap.set_aside_in,
            replaced_kind="schema",
            swapped_at=None if swap.already_done else swap.swapped_at.isoformat(),
        )
    names = restore_names(db.name, str(ctx.params["restore_id"]))
    with dbdriver.connect(db, dbname="postgres", autocommit=True) as conn:
        done = dbdriver.database_exists(conn, names.replaced)
    if done:
        ctx.note(f"{names.replaced} exists: the swap was done before this attempt")
        return Swapped(live=names.live, replaced=names.replaced)
    beside = ctx.output("restore-beside", RestoredBeside)
    restored = RestoredDatabase(
        name=names.scratch,
        live_db=names.live,
        restore_id=names.restore_id,
        from_backup=beside.from_backup,
        from_live=beside.from_live,
        schema_version=beside.schema_version,
        live_copy=None,
        steps=(),
    )
    result = swap_in(_admin(ctx.target), live_db=names.live, restored=restored)
    return Swapped(live=names.live, replaced=result.set_aside_as, swapped_at=result.swapped_at.isoformat())


# How many of the orders left for a person the step's output lists (the file has all of them).
NEEDS_A_PERSON_SHOWN = 5


def _carry_step(ctx: RunContext) -> dict[str, object]:
    """With the service still fenced: rows of the restored domains written after their moment are
    carried over from the replaced database, except orders whose total does not match their lines,
    which are listed for a person. Idempotent (a rerun finds the rows there and writes nothing)."""
    scoped = ctx.output("scope", Scoped)
    if not ctx.params.get("carry_over", True):
        return {"skipped": f"set aside: {scoped.after_target_plan}"}
    if not scoped.cuts:
        return {"skipped": "a run journaled before the scope step recorded the restore's moment"}
    restored = tuple(table for table in tables_for(list(scoped.domains)) if table in RESTORE_CARRIES)
    if not restored:
        return {"skipped": f"a restore carries no rows of {', '.join(scoped.domains)} over"}
    swapped = ctx.output("swap-in", Swapped)
    carried = [at for domain, at in scoped.cuts.items() if set(tables_for([domain])) & RESTORE_CARRIES]
    since = min(datetime.fromisoformat(at) for at in carried)
    ctx.progress(f"carrying rows written after {since.isoformat()} over from {swapped.replaced}")
    in_live = swapped.replaced_kind == "schema"
    report = carry_over(
        _db(ctx.target),
        failed_db=swapped.live if in_live else swapped.replaced,
        set_aside=swapped.replaced if in_live else None,
        restore_point_at=since.isoformat(),
        tables=restored,
    )
    doc = report.to_json()
    damaged = doc.pop("damaged")
    if damaged:
        path = write_handover(ctx.target.state_dir, ctx.run_id, damaged)
        doc["needs_a_person_file"] = str(path)
        ctx.note(
            f"{len(damaged)} orders written after the restore's moment left for a person, listed in {path}"
        )
    doc["needs_a_person_count"] = len(damaged)
    doc["needs_a_person"] = damaged[:NEEDS_A_PERSON_SHOWN]
    doc["tables"] = list(restored)
    return doc


def _start_step(ctx: RunContext) -> dict[str, object]:
    ctx.progress("letting the order service back in and waiting for health")
    _unfence(ctx)
    host = ctx.target.writable.hosts[0]
    report = smoke_test(f"http://{host.address}:{host.service_port}")
    line = failure_line(report)
    if line:
        raise VerificationFailed(
            f"{line}; the restored data is live, `recovery restore` notes how to swap back"
        )
    return {"smoke_test": "passed", "service": f"{host.address}:{host.service_port}"}


def record_path(target: Target, restore_id: str) -> Path:
    return target.state_dir / "restores" / f"{restore_id}.json"


def _record_step(ctx: RunContext) -> dict[str, object]:
    restore_id = str(ctx.params["restore_id"])
    swapped = ctx.output("swap-in", Swapped)
    record = {
        "restore_id": restore_id,
        "run_id": ctx.run_id,
        "live": swapped.live,
        "replaced": swapped.replaced,
        "replaced_kind": swapped.replaced_kind,
        "scope": ctx.output("scope", Scoped).decision,
        "choices": [
            choice.model_dump(by_alias=True)
            for choice in ctx.output("restore-beside", RestoredBeside).choices
        ],
        "recorded_at": datetime.now(UTC).isoformat(),
    }
    path = record_path(ctx.target, restore_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    partial.replace(path)
    return {"record": str(path)}


def restore_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    """params: domains (list), at (ISO time or None), point (name or None), restore_id."""
    domains = [parse_domain(str(domain)) for domain in params["domains"]]
    db = target.writable.database
    names = restore_names(db.name, str(params["restore_id"]))
    staged = staging_names(db.name, str(params["restore_id"]))
    hosts = tuple(host.name for host in target.hosts())
    what = ", ".join(domains)
    policy = str(params.get("scope") or DEFAULT_SCOPE_POLICY)
    carry = bool(params.get("carry_over", True))
    return Runbook(
        name="restore",
        params=dict(params),
        confirm=(
            f"restoring {what}"
            + (" (and the domains that depend on them, if --scope widen must)" if policy == "widen" else "")
            + f" replaces them in database {db.name} (kept as schema {staged.replaced} of {db.name}, or as "
            f"{names.replaced} when live's schema version differs from the backup's)"
        ),
        steps=(
            Step(
                "scope",
                f"check that database {db.name} answers; decide which domains go back together "
                f"(--scope {policy}) and count the rows written after the backups' moment",
                _scope,
                mutating=False,
            ),
            Step(
                "select",
                f"choose a backup and a copy for {what}, with the reason",
                _select_step,
                mutating=False,
            ),
            Step(
                "restore-beside",
                f"restore {what} into schema {staged.staging} of {db.name} beside live's tables (or into "
                f"database {names.scratch} when the schema versions differ)",
                _restore_step,
                acts_on=(f"schema {staged.staging} of {db.name}", f"database {names.scratch}"),
            ),
            Step(
                "verify-restored",
                "check fingerprints against the manifests and the business invariants",
                _verify_step,
                mutating=False,
            ),
            Step(
                "fence-service",
                "keep the order service out of the database (or stop it) until the swap is done",
                _fence_step,
                acts_on=hosts,
            ),
            Step(
                "catch-up-live",
                f"carry rows written to live's other domains since the copy over into {names.scratch}",
                _catch_up_step,
                acts_on=(f"database {names.scratch}",),
            ),
            Step(
                "swap-in",
                f"swap the restored tables into {db.name} in one transaction, keeping live's in schema "
                f"{staged.replaced} (or swap database {names.scratch} in, keeping {names.replaced})",
                _swap_step,
                acts_on=(f"database {db.name}",),
            ),
            Step(
                "carry-over",
                (
                    f"carry rows of {what} written after the backups' moment over from what the swap set "
                    "aside; "
                    "orders whose total does not match their lines are listed for a person"
                    if carry
                    else f"leave rows of {what} written after the backups' moment in what the swap set aside"
                ),
                _carry_step,
                acts_on=(f"database {db.name}",),
            ),
            Step(
                "start-service",
                "start the order service, wait for health, run the smoke test",
                _start_step,
                acts_on=hosts,
            ),
            Step("record", "record the restore and the database kept for rollback", _record_step),
            replay_intake_step(),
        ),
    )


def restore_params(
    domains: Sequence[Domain],
    *,
    at: str | None,
    point: str | None,
    restore_id: str,
    scope: str = DEFAULT_SCOPE_POLICY,
    carry_over: bool = True,
    now: datetime | None = None,
) -> dict[str, object]:
    if at is not None and point is not None:
        raise UsageError("give either --at or --point, not both")
    moment = parse_at(at)
    current = now or datetime.now(UTC)
    if moment is not None and moment > current:
        raise UsageError(
            f"--at {at} is in the future (it is now {current:%Y-%m-%dT%H:%M:%SZ}); give a time in the past"
        )
    if not domains:
        raise UsageError(
            "no domains to restore; name them with --domains, e.g. --domains orders,transactions"
        )
    if scope not in SCOPE_POLICIES:
        raise UsageError(f"unknown --scope {scope!r}; use one of {', '.join(SCOPE_POLICIES)}")
    return {
        "domains": list(dict.fromkeys(domains)),
        "at": at,
        "point": point,
        "restore_id": restore_id,
        "scope": scope,
        "carry_over": carry_over,
    }


register_runbook("restore", restore_runbook)


# `recovery restore prune-replaced` ----------------------------------------------------------------------


class ReplacedDecided(TypedOutput):
    drop: tuple[str, ...]
    keep: dict[str, str]


def _replaced_decide(ctx: RunContext) -> ReplacedDecided:
    """Decide again at run time: only what the operator confirmed, still exists, and no running or
    interrupted run needs (its journal says which replaced database it works on)."""
    plan = plan_replaced(
        replaced_databases(ctx.target), list(ctx.params["restore_ids"]), needed_by_unfinished_runs(ctx.target)
    )
    for restore_id, reason in plan.keep.items():
        ctx.note(f"{restore_id}: kept: {reason}")
    return ReplacedDecided(drop=plan.drop, keep=dict(plan.keep))


def _replaced_drop(ctx: RunContext) -> dict[str, object]:
    db = _db(ctx.target)
    dropped = []
    admin = _admin(ctx.target)
    for restore_id in ctx.output("decide", ReplacedDecided).drop:
        database, schema = (
            restore_names(db.name, restore_id).replaced,
            staging_names(db.name, restore_id).replaced,
        )
        ctx.progress(
            f"dropping what restore {restore_id} replaced ({database} or schema {schema} of {db.name})"
        )
        if drop_replaced(admin, live_db=db.name, restore_id=restore_id, confirmed=True):
            dropped.append(database)
        if drop_replaced_tables(admin, live_db=db.name, restore_id=restore_id, confirmed=True):
            dropped.append(f"{db.name}.{schema}")
    return {"dropped": dropped}


def _replaced_check(ctx: RunContext) -> dict[str, object]:
    left = set(replaced_databases(ctx.target)) & set(ctx.output("decide", ReplacedDecided).drop)
    if left:
        raise VerificationFailed(f"after pruning: {sorted(left)[0]} is still there; run the prune again")
    return {"remaining": replaced_databases(ctx.target)}


def prune_replaced_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    """params: restore_ids (the replaced databases the operator confirmed, by restore id)."""
    db = target.writable.database
    ids = list(params["restore_ids"])
    return Runbook(
        name="restore-prune-replaced",
        params=dict(params),
        confirm=f"dropping {len(ids)} replaced copies of {db.name} removes the way back",
        steps=(
            Step(
                "decide",
                "list the replaced databases and keep those an unfinished run still needs",
                _replaced_decide,
                mutating=False,
            ),
            Step(
                "drop-replaced",
                f"drop up to {len(ids)} replaced copies of {db.name}",
                _replaced_drop,
                acts_on=tuple(f"database {restore_names(db.name, i).replaced}" for i in ids),
            ),
            Step("check-after", "check that the dropped databases are gone", _replaced_check, mutating=False),
        ),
    )


def prune_replaced_params(target: Target) -> dict[str, object]:
    """The replaced databases that exist now: what the operator confirms."""
    return {"restore_ids": replaced_databases(target)}


register_runbook("restore-prune-replaced", prune_replaced_runbook)
