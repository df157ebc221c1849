"""The restore runbook: chosen domains back from their backups, beside live, verified, then swapped in.

Steps: 1 scope (the live database answers; which domains); 2 select (catalog, both copies checked
against their manifests, `select_backups` chooses per domain with a reason; keys are unwrapped here so a
wrong or missing key refuses before anything changes); 3 restore beside live (`restore_beside`; a copy
that turns out damaged while it is read is marked so and the selection falls back to the next
candidate); 4 verify the restored copy (fingerprints against the manifests, business invariants); 5 fence
the service (playbooks/restore.yml), 6 catch up: rows written to the domains copied from live since the
copy was cut are carried over (recovery.restore.catchup), 7 swap in, 8 start the service and run the smoke
test, 9 record.

The seam to other kinds of backup: a choice becomes a `Source` per domain (`sources_for`): a daily
backup's `dump` section streamed out of the codec, or, for a realtime choice, whatever point-in-time
recovery provides (a `FromDatabase` over a recovered scratch cluster) once it exists.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from recovery.backup.catalog import catalog_for
from recovery.backup.naming import Domain, parse_domain
from recovery.drivers import db as dbdriver
from recovery.drivers.ansible import require_success, run_playbook
from recovery.engine import Runbook, RunContext, Step, TypedOutput, register_runbook
from recovery.engine.model import thaw
from recovery.errors import ExternalFailure, PreconditionFailed, RecoveryError, UsageError, VerificationFailed
from recovery.paths import PLAYBOOKS_DIR
from recovery.release.gates import observe_host_health
from recovery.restore import fence
from recovery.restore.beside import restore_with_fallbacks
from recovery.restore.catchup import catch_up, report_lines
from recovery.restore.choose import (
    RestoreRequest,
    choose,
    chosen_manifests,
    parse_at,
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
from recovery.restore.replaced import needed_by_unfinished_runs, plan_replaced, replaced_databases
from recovery.restore.selection import DomainChoice, Selection
from recovery.runbooks.replay_intake import replay_intake_step
from recovery.targets.model import Database, Target
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


class RestoredBeside(TypedOutput):
    """The restore-beside step's result. Defaults let a run journaled by an older release resume."""

    scratch: str = ""
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
    replaced: str
    swapped_at: str | None = None


# Steps -----------------------------------------------------------------------------------------------


def _db(target: Target) -> Database:
    return target.primary.database


def _admin(target: Target) -> str:
    return dbdriver.conninfo(_db(target), dbname="postgres")


def _request(ctx: RunContext) -> RestoreRequest:
    point = ctx.params.get("point")
    return RestoreRequest(
        domains=tuple(parse_domain(str(domain)) for domain in ctx.params["domains"]),
        at=parse_at(ctx.params.get("at")),
        point=str(point) if point else None,
    )


def _scope(ctx: RunContext) -> dict[str, object]:
    db = _db(ctx.target)
    try:
        with dbdriver.connect(db, dbname="postgres", autocommit=True) as conn:
            exists = dbdriver.database_exists(conn, db.name)
    except ExternalFailure as exc:
        raise PreconditionFailed(
            f"{exc.message}; nothing was changed", code="restore.database_unreachable"
        ) from None
    if not exists:
        raise PreconditionFailed(f"the live database {db.name} does not exist on {db.address}:{db.port}")
    names = restore_names(db.name, str(ctx.params["restore_id"]))
    return {
        "live": names.live,
        "scratch": names.scratch,
        "replaced": names.replaced,
        "domains": list(_request(ctx).domains),
    }


def _select_step(ctx: RunContext) -> Selected:
    selection, entries = choose(ctx.target, _request(ctx), progress=ctx.progress)
    for refusal in selection.refusals:
        ctx.note(f"{refusal.domain}: refused: {refusal.reason}")
    if selection.refused:
        raise refusal_error(selection)
    manifests = chosen_manifests(entries, selection)
    problem = schema_versions_agree(list(manifests.values()))
    if problem:
        raise PreconditionFailed(problem, code="restore.schema_mismatch")
    catalog = catalog_for(ctx.target)
    assert catalog.keys is not None
    for manifest in manifests.values():
        # A wrong or missing key refuses here, before anything is created.
        manifest.unwrap_key(catalog.keys)
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
    reports, invariant_report = check_restored_copy(
        lambda: dbdriver.connect(db, dbname=beside.scratch, autocommit=True), expectations.fingerprints
    )
    lines = [failure_line(report) for report in reports] + [failure_line(invariant_report)]
    problems = [*expectations.problems, *(line for line in lines if line)]
    if problems:
        discard_restored(_admin(target), live_db=db.name, restore_id=str(ctx.params["restore_id"]))
        raise VerificationFailed(f"{problems[0]}; the restored copy was dropped, live is unchanged")
    return {
        "fingerprints": {name: fp.rows for name, fp in expectations.fingerprints.items()},
        "invariants": "passed",
    }


def _service(ctx: RunContext, phase: str) -> None:
    result = run_playbook(
        ctx.target.inventory, str(RESTORE_PLAYBOOK), extravars={"order_restore_service_phase": phase}
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
    db = _db(ctx.target)
    dropped = "the restored copy was dropped"
    try:
        discard_restored(_admin(ctx.target), live_db=db.name, restore_id=str(ctx.params["restore_id"]))
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


def _start_step(ctx: RunContext) -> dict[str, object]:
    ctx.progress("letting the order service back in and waiting for health")
    _unfence(ctx)
    host = ctx.target.primary.hosts[0]
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
    db = target.primary.database
    names = restore_names(db.name, str(params["restore_id"]))
    hosts = tuple(host.name for host in target.hosts())
    what = ", ".join(domains)
    return Runbook(
        name="restore",
        params=dict(params),
        confirm=f"restoring {what} replaces them in database {db.name} (kept as {names.replaced})",
        steps=(
            Step(
                "scope", f"check that database {db.name} answers and name the restore", _scope, mutating=False
            ),
            Step(
                "select",
                f"choose a backup and a copy for {what}, with the reason",
                _select_step,
                mutating=False,
            ),
            Step(
                "restore-beside",
                f"restore {what} into {names.scratch} beside live",
                _restore_step,
                acts_on=(f"database {names.scratch}",),
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
                f"swap {names.scratch} in as {db.name}, keeping {names.replaced}",
                _swap_step,
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
    domains: Sequence[Domain], *, at: str | None, point: str | None, restore_id: str
) -> dict[str, object]:
    if at is not None and point is not None:
        raise UsageError("give either --at or --point, not both")
    parse_at(at)
    if not domains:
        raise UsageError(
            "no domains to restore; name them with --domains, e.g. --domains orders,transactions"
        )
    return {"domains": list(dict.fromkeys(domains)), "at": at, "point": point, "restore_id": restore_id}


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
    for restore_id in ctx.output("decide", ReplacedDecided).drop:
        ctx.progress(f"dropping {restore_names(db.name, restore_id).replaced}")
        if drop_replaced(_admin(ctx.target), live_db=db.name, restore_id=restore_id, confirmed=True):
            dropped.append(restore_names(db.name, restore_id).replaced)
    return {"dropped": dropped}


def _replaced_check(ctx: RunContext) -> dict[str, object]:
    left = set(replaced_databases(ctx.target)) & set(ctx.output("decide", ReplacedDecided).drop)
    if left:
        raise VerificationFailed(f"after pruning: {sorted(left)[0]} is still there; run the prune again")
    return {"remaining": replaced_databases(ctx.target)}


def prune_replaced_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    """params: restore_ids (the replaced databases the operator confirmed, by restore id)."""
    db = target.primary.database
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
