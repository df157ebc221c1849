"""The rollback runbook, and the upgrade-with-automatic-rollback flow pipelines run.

Rollback reads the upgrade's journal (its restore point and the release that ran before), then decides
(pure) whether the database must go back too: only when the schema changed or the failed release
damaged data. A code-only rollback is one playbook run (switch `current` back, restart, wait for
health). A database rollback takes the copy of the restore point the upgrade restored and verified
beside live ahead of need (runbooks/speculative.py; built here when there is none), fences the service
out of its database (recovery/restore/fence.py), swaps the copy in (the failed database stays aside as
`<live>_replaced_<id>`, never dropped), carries over what was accepted after the restore point, then
switches the code back and lifts the fence as soon as every host runs the previous release. Every
rollback ends with a check of what changed since the verified copy (or since the restore point) and a
smoke test. Each step checks what is already done, so a rerun or `recovery runs resume` continues where
an interrupted rollback stopped. docs/upgrade-rollback.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from recovery.backup.naming import DOMAINS
from recovery.drivers import db as db_driver
from recovery.drivers.ansible import PlaybookResult, run_files_dir, run_playbook
from recovery.engine import (
    Engine,
    Runbook,
    RunContext,
    RunResult,
    Step,
    Subscriber,
    failed_run,
    journal_path,
    read_journal,
    register_runbook,
    run_ids,
    summarize,
)
from recovery.errors import (
    ExitCode,
    ExternalFailure,
    PreconditionFailed,
    RecoveryError,
    UsageError,
    VerificationFailed,
)
from recovery.paths import PLAYBOOKS_DIR
from recovery.release.catalog import get_release
from recovery.release.gates import observe_host_health
from recovery.restore import fence
from recovery.restore.carryover import LOOKBACK, carry_over
from recovery.restore.database import RestoredDatabase, restore_id_for, restore_names, swap_in
from recovery.restore.handover import write_handover
from recovery.runbooks import speculative
from recovery.runbooks.replay_intake import replay_intake_step
from recovery.runbooks.upgrade import RUNBOOK as UPGRADE_RUNBOOK
from recovery.runbooks.upgrade import RestorePoint, upgrade_runbook
from recovery.targets.model import Target
from recovery.verify.invariants import run_invariants
from recovery.verify.reports import failure_line
from recovery.verify.smoke import smoke_test

RUNBOOK = "rollback"
NEEDS_A_PERSON_SHOWN = 20
DEFAULT_HEALTH_TIMEOUT = 30


# Decisions (pure) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollbackDecision:
    restore_database: bool
    reason: str


def decide_rollback(
    point_schema: int | None, live_schema: int | None, damaged_orders: int, already_swapped: bool
) -> RollbackDecision:
    """Whether the database goes back to the restore point, and why (one sentence)."""
    if already_swapped:
        return RollbackDecision(True, "the restore point was already swapped in; finish the carry-over")
    if live_schema != point_schema:
        return RollbackDecision(
            True,
            f"the schema changed ({point_schema} -> {live_schema}): the previous release cannot run on it",
        )
    if damaged_orders:
        return RollbackDecision(
            True, f"{damaged_orders} orders written since the restore point do not match their lines"
        )
    return RollbackDecision(
        False, f"schema unchanged ({live_schema}) and no damaged orders: switch code only"
    )


@dataclass(frozen=True)
class SinceFacts:
    """What a database rollback changed after the verified copy: the rows written since the point."""

    schema_version: int | None
    bad_orders: int  # orders since the point without lines or whose total is not their lines' sum
    paid_without_capture: int  # paid orders since the point without a captured payment of their total
    negative_stock: int  # products below zero (the carry-over sets stock levels)


def judge_after_restore(facts: SinceFacts, point_schema: int | None) -> str | None:
    """The first problem of a restored and carried-over database, or None. Pure.

    The copy's every invariant held before the swap; what the rollback wrote since are the carried-over
    rows, so only they (and the stock levels it set) are checked again."""
    if facts.schema_version != point_schema:
        return f"live is at schema {facts.schema_version}, the restore point at {point_schema}"
    if facts.bad_orders:
        return f"{facts.bad_orders} orders written since the restore point do not match their lines"
    if facts.paid_without_capture:
        return f"{facts.paid_without_capture} paid orders since the restore point have no captured payment"
    if facts.negative_stock:
        return f"{facts.negative_stock} products have a negative stock level"
    return None


# Finding the upgrade -------------------------------------------------------------------------------


def _upgrade_run(target: Target, run_id: str | None) -> RunResult:
    candidates = [run_id] if run_id else list(run_ids(target.state_dir))
    for candidate in candidates:
        path = journal_path(target.state_dir, candidate)
        if not path.is_file():
            raise UsageError(f"no run {candidate} for target {target.name}; `recovery runs list` shows them")
        result = summarize(read_journal(path))
        if result.runbook == UPGRADE_RUNBOOK:
            return result
        if run_id:
            raise UsageError(f"run {run_id} is a {result.runbook} run, not an upgrade")
    raise PreconditionFailed(
        f"target {target.name} has no upgrade run to roll back; give the release with --to for a code-only "
        "rollback"
    )


def _find_upgrade(ctx: RunContext) -> dict[str, Any]:
    requested = str(ctx.params.get("upgrade_run") or "") or None
    to = str(ctx.params.get("to") or "") or None
    try:
        upgrade = _upgrade_run(ctx.target, requested)
    except PreconditionFailed:
        if to is None:
            raise
        return {"upgrade_run": None, "failed_release": None, "previous_release": to, "restore_point": None}
    step = next(s for s in upgrade.steps if s.name == "restore-point")
    point = dict(step.output) if step.status == "ok" and step.output else None
    preflight = next(s for s in upgrade.steps if s.name == "preflight")
    previous = (
        to
        or (point["release"] if point else None)
        or (str(preflight.output["previous_release"]) if preflight.output else None)
    )
    if previous is None:
        raise PreconditionFailed(
            f"upgrade run {upgrade.run_id} stopped before it recorded the running release; give --to"
        )
    if point and to and to != point["release"]:
        ctx.note(f"--to {to} differs from the restore point's release {point['release']}")
    ctx.note(f"rolling back upgrade {upgrade.run_id} ({upgrade.params.get('release')}) to {previous}")
    return {
        "upgrade_run": upgrade.run_id,
        "failed_release": upgrade.params.get("release"),
        "previous_release": previous,
        "restore_point": point,
    }


def _names(ctx: RunContext) -> Any:
    run = ctx.outputs["find-upgrade"]["upgrade_run"]
    return restore_names(ctx.target.writable.database.name, restore_id_for(str(run))) if run else None


def _database_exists(target: Target, name: str) -> bool:
    with db_driver.connect(target.writable.database, dbname="postgres", autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


_SINCE_FACTS = """
WITH recent AS (
    SELECT id FROM orders WHERE created_at >= %(since)s
    UNION SELECT order_id FROM transactions WHERE created_at >= %(since)s)
SELECT (SELECT max(version) FROM schema_migrations),
       (SELECT count(*) FROM (
           SELECT o.id FROM orders o JOIN recent r ON r.id = o.id
           LEFT JOIN order_items i ON i.order_id = o.id
           GROUP BY o.id, o.total_cents
           HAVING count(i.order_id) = 0
               OR o.total_cents <> coalesce(sum(i.quantity::bigint * i.unit_price_cents), 0)) AS bad),
       (SELECT count(*) FROM orders o JOIN recent r ON r.id = o.id
        WHERE o.status = 'paid' AND NOT EXISTS (
            SELECT 1 FROM transactions t
            WHERE t.order_id = o.id AND t.status = 'captured' AND t.amount_cents = o.total_cents)),
       (SELECT count(*) FROM products WHERE stock < 0)
"""

_LIVE_FACTS = """
SELECT (SELECT max(version) FROM schema_migrations),
       (SELECT count(*) FROM (
           SELECT o.id FROM orders o LEFT JOIN order_items i ON i.order_id = o.id
           WHERE o.created_at >= %s
           GROUP BY o.id, o.total_cents
           HAVING o.total_cents <> coalesce(sum(i.quantity::bigint * i.unit_price_cents), 0)) AS bad)
"""


def _decide(ctx: RunContext) -> dict[str, Any]:
    found = ctx.outputs["find-upgrade"]
    point = found["restore_point"]
    if point is None:
        decision = RollbackDecision(False, "no restore point was taken: switch code only")
        return {"restore_database": False, "reason": decision.reason}
    names = _names(ctx)
    swapped = _database_exists(ctx.target, names.replaced)
    live_schema, damaged = None, 0
    if not swapped:
        with db_driver.connect(ctx.target.writable.database, autocommit=True) as conn:
            row = conn.execute(_LIVE_FACTS, (RestorePoint.from_json(point).taken_at,)).fetchone()
        assert row is not None
        live_schema = None if row[0] is None else int(str(row[0]))
        damaged = int(str(row[1]))
    decision = decide_rollback(point["schema_version"], live_schema, damaged, swapped)
    ctx.note(decision.reason)
    return {
        "restore_database": decision.restore_database,
        "reason": decision.reason,
        "live_schema": live_schema,
        "damaged_orders": damaged,
    }


def _restores(ctx: RunContext) -> bool:
    return bool(ctx.outputs["decide"]["restore_database"])


def _restore(ctx: RunContext) -> dict[str, Any]:
    """The verified copy of the restore point: the one the upgrade built ahead, else built now."""
    point_doc = ctx.outputs["find-upgrade"]["restore_point"]
    if not _restores(ctx):
        cancelled = False
        if point_doc is not None:
            cancelled = speculative.cancel_copy(
                ctx.target, RestorePoint.from_json(point_doc), _names(ctx).restore_id
            )
        return {"skipped": "code-only rollback", "cancelled_copy_restored_ahead": cancelled}
    names = _names(ctx)
    if _database_exists(ctx.target, names.replaced):
        return {"skipped": f"{names.replaced} exists: already swapped in"}
    point = RestorePoint.from_json(ctx.outputs["find-upgrade"]["restore_point"])
    state = speculative.wait_for_copy(ctx.target, point, names.restore_id)
    copy = state.copy
    if copy is not None:
        ctx.note(f"using the copy restored and verified ahead: {copy.database} ({state.reason})")
        built_ahead = True
    else:
        ctx.note(f"restoring beside live now: {state.reason}")
        copy = speculative.build_verified_copy(ctx.target, point, names.restore_id)
        built_ahead = False
    return {
        "database": copy.database,
        "schema_version": copy.schema_version,
        "built_ahead": built_ahead,
        "waited_s": state.waited_s,
        "restore_s": copy.restore_s,
        "verify_s": copy.verify_s,
        "steps": copy.steps,
    }


def _run_switch(ctx: RunContext, phase: str) -> PlaybookResult:
    """One run of rollback.yml: phase `switch` (the hot path), or `stop` when the service cannot be fenced."""
    release = str(ctx.outputs["find-upgrade"]["previous_release"])
    return run_playbook(
        ctx.target.inventory,
        str(PLAYBOOKS_DIR / "rollback.yml"),
        extravars={
            "order_service_release": release,
            "order_service_rollback_phase": phase,
            "order_service_health_timeout": int(ctx.params["health_timeout"]),
        },
        private_data_dir=run_files_dir(ctx.target.state_dir, ctx.run_id, phase),
    )


def _playbook_failed(result: PlaybookResult, phase: str, release: str) -> ExternalFailure:
    f = result.failed_task
    detail = f"task {f.task!r} failed on {f.host}: {f.message}" if f else f"ended {result.status}"
    return ExternalFailure(f"rollback.yml ({phase} {release}): {detail}", code="rollback.playbook")


def _every_host_runs(target: Target, release: str) -> bool:
    return all(observe_host_health(h, timeout=2.0).release == release for h in target.hosts())


def _stop_instead(ctx: RunContext) -> dict[str, Any]:
    result = _run_switch(ctx, "stop")
    if not result.ok:
        raise _playbook_failed(result, "stop", str(ctx.outputs["find-upgrade"]["previous_release"]))
    return {"role": None, "stopped": True, "playbook_seconds": round(result.duration, 3)}


def _fence(ctx: RunContext) -> dict[str, Any]:
    if not _restores(ctx):
        return {"skipped": True}
    db = ctx.target.writable.database
    names = _names(ctx)
    live = names.replaced if _database_exists(ctx.target, names.replaced) else db.name
    try:
        role = fence.service_role(db, live)
    except PreconditionFailed as exc:
        # No role of its own to fence (e.g. the service connects as a superuser): stop it instead.
        ctx.note(f"cannot fence: {exc.message}; stopping the service on every host instead")
        return _stop_instead(ctx)
    fenced = fence.fence(db, role)
    ctx.note(
        f"role {role} may not log in until every host runs the previous release "
        f"({fenced.terminated_sessions} sessions ended)"
    )
    return {"role": role, "terminated_sessions": fenced.terminated_sessions, "already": fenced.already}


def _swap(ctx: RunContext) -> dict[str, Any]:
    if not _restores(ctx):
        return {"skipped": True}
    names = _names(ctx)
    if _database_exists(ctx.target, names.replaced):
        return {"replaced": names.replaced, "already": True}
    db = ctx.target.writable.database
    restored = RestoredDatabase(
        name=names.scratch,
        live_db=db.name,
        restore_id=names.restore_id,
        from_backup=DOMAINS,
        from_live=(),
        schema_version=None,
        live_copy=None,
        steps=(),
    )
    result = swap_in(db_driver.conninfo(db, dbname="postgres"), live_db=db.name, restored=restored)
    ctx.note(f"{names.scratch} is live; the failed database is kept as {result.set_aside_as}")
    return {"replaced": result.set_aside_as, "terminated_sessions": result.terminated_sessions}


def _carry(ctx: RunContext) -> dict[str, Any]:
    if not _restores(ctx):
        return {"skipped": True}
    point = RestorePoint.from_json(ctx.outputs["find-upgrade"]["restore_point"])
    report = carry_over(
        ctx.target.writable.database, failed_db=_names(ctx).replaced, restore_point_at=point.taken_at
    )
    doc = report.to_json()
    damaged = doc.pop("damaged")
    if damaged:
        # The whole list goes to a file (the journal keeps small outputs); the output keeps the first few.
        path = write_handover(ctx.target.state_dir, ctx.run_id, damaged)
        doc["needs_a_person_file"] = str(path)
        ctx.note(f"{len(damaged)} damaged orders left for a person, listed in {path}")
    doc["needs_a_person_count"] = len(damaged)
    doc["needs_a_person"] = damaged[:NEEDS_A_PERSON_SHOWN]
    return doc


def _switch(ctx: RunContext) -> dict[str, Any]:
    """Switch the code back (one playbook run); with a fence up, lift it the moment every host runs the
    previous release: the faulty code has stopped everywhere, and the previous release's health, which
    the playbook waits for, needs the database."""
    release = str(ctx.outputs["find-upgrade"]["previous_release"])
    fenced = ctx.outputs.get("fence") or {}
    role = fenced.get("role")
    started = time.monotonic()
    if not role:
        result = _run_switch(ctx, "switch")
        if not result.ok:
            raise _playbook_failed(result, "switch", release)
        return {"phase": "switch", "release": release, "playbook_seconds": round(result.duration, 3)}
    outcome: list[PlaybookResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(_run_switch(ctx, "switch"))
        except BaseException as exc:  # re-raised in the step's own thread below
            errors.append(exc)

    worker = threading.Thread(target=run, name="rollback-switch")
    worker.start()
    lifted_at: float | None = None
    db = ctx.target.writable.database
    while worker.is_alive() and lifted_at is None:
        if _every_host_runs(ctx.target, release):
            fence.lift(db, str(role))
            lifted_at = time.monotonic() - started
            ctx.note(f"every host runs {release}: role {role} may log in again")
        else:
            time.sleep(0.1)
    worker.join()
    if errors:
        raise errors[0]
    result = outcome[0]
    if lifted_at is None and result.ok:  # the playbook cannot pass with the fence up; guard anyway
        fence.lift(db, str(role))
        lifted_at = time.monotonic() - started
    if not result.ok:
        # The fence stays up: the faulty release may still run somewhere. A rerun lifts it.
        raise _playbook_failed(result, "switch", release)
    return {
        "phase": "switch",
        "release": release,
        "playbook_seconds": round(result.duration, 3),
        "fence_lifted_after_s": None if lifted_at is None else round(lifted_at, 3),
    }


def _verify(ctx: RunContext) -> dict[str, Any]:
    point = ctx.outputs["find-upgrade"]["restore_point"]
    restored = ctx.outputs.get("restore-beside") or {}
    if point is None or (_restores(ctx) and "database" not in restored):
        # No restore point, or a rerun after the swap whose copy this run did not verify: check it all.
        with db_driver.connect(ctx.target.writable.database, autocommit=True) as conn:
            report = run_invariants(conn, "public")
        line = failure_line(report)
        if line is not None:
            raise VerificationFailed(line)
        checked = "every invariant"
    elif _restores(ctx):
        # The copy's every invariant held before the swap; since then only the carry-over wrote.
        since = datetime.fromisoformat(RestorePoint.from_json(point).taken_at) - LOOKBACK
        with db_driver.connect(ctx.target.writable.database, autocommit=True) as conn:
            row = conn.execute(_SINCE_FACTS, {"since": since}).fetchone()
        assert row is not None
        facts = SinceFacts(
            None if row[0] is None else int(str(row[0])), int(str(row[1])), int(str(row[2])), int(str(row[3]))
        )
        problem = judge_after_restore(facts, point["schema_version"])
        if problem is not None:
            raise VerificationFailed(f"after the restore and the carry-over: {problem}")
        checked = "the verified copy's schema and every row carried over since the restore point"
    else:
        # Code only: the rollback did not touch the database, so recheck only what was written since the
        # restore point (the whole-table invariants take about 15 s at a million orders).
        with db_driver.connect(ctx.target.writable.database, autocommit=True) as conn:
            row = conn.execute(_LIVE_FACTS, (RestorePoint.from_json(point).taken_at,)).fetchone()
        assert row is not None
        if int(str(row[1])):
            raise VerificationFailed(
                f"{row[1]} orders written since the restore point do not match their lines; "
                "roll back again to restore the database"
            )
        checked = "orders since the restore point"
    primary = ctx.target.writable.hosts[0]
    smoke = smoke_test(f"http://{primary.address}:{primary.service_port}", timeout=15)
    if not smoke.passed:
        failed = next((s for s in smoke.steps if not s.passed), None)
        raise VerificationFailed(
            f"smoke test after the rollback failed at {failed.name if failed else '?'}: "
            f"{failed.reason if failed else 'no step ran'}"
        )
    return {"checked": checked, "smoke_seconds": round(smoke.seconds, 3)}


def rollback_params(
    *, upgrade_run: str | None = None, to: str | None = None, health_timeout: int = DEFAULT_HEALTH_TIMEOUT
) -> dict[str, Any]:
    if to is not None:
        get_release(to)  # UsageError for an unknown release
    if health_timeout < 1:
        raise UsageError(f"--health-timeout must be at least 1 second, not {health_timeout}")
    return {"upgrade_run": upgrade_run or "", "to": to or "", "health_timeout": health_timeout}


def rollback_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    hosts = tuple(h.name for h in target.hosts())
    database = target.writable.database.name
    return Runbook(
        name=RUNBOOK,
        params=dict(params),
        steps=(
            Step(
                "find-upgrade",
                "read the upgrade's journal: restore point and previous release",
                _find_upgrade,
                mutating=False,
            ),
            Step(
                "decide",
                "decide whether the database must go back (schema changed or data damaged)",
                _decide,
                mutating=False,
                acts_on=(database,),
            ),
            Step(
                "restore-beside",
                "take the copy of the restore point verified ahead, or restore and verify it now",
                _restore,
                acts_on=(database,),
            ),
            Step(
                "fence",
                "keep the service's database role out and end its sessions before the swap",
                _fence,
                acts_on=(database,),
            ),
            Step(
                "swap-in",
                "swap the restored copy in; keep the failed database aside",
                _swap,
                acts_on=(database,),
            ),
            Step(
                "carry-over",
                "re-apply orders, payments and stock accepted after the restore point",
                _carry,
                acts_on=(database,),
            ),
            Step(
                "switch-release",
                "switch current back to the previous release, restart, lift the fence, wait for health",
                _switch,
                acts_on=hosts,
            ),
            Step(
                "verify",
                "check what changed since the verified copy, and the smoke test",
                _verify,
                mutating=False,
                acts_on=(database, *hosts),
            ),
            replay_intake_step(),
        ),
    )


register_runbook(RUNBOOK, rollback_runbook)


# The pipeline flow ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpgradeOutcome:
    """What `recovery upgrade` came to: both runs, the failed gate, and the exit code."""

    status: str  # upgraded | rolled_back | rollback_failed | refused | failed
    exit_code: ExitCode
    upgrade: RunResult | None
    rollback: RunResult | None = None
    failed_gate: str | None = None
    reason: str | None = None
    error_code: str | None = None


def failed_gate_of(result: RunResult) -> str | None:
    """The gate a failed upgrade run names in its error code (`gate.<name>`), else its failed step."""
    if result.code and result.code.startswith("gate."):
        return result.code.removeprefix("gate.")
    return result.failed_step


def run_rollback(
    target: Target, params: Mapping[str, Any], subscribers: Sequence[Subscriber] = ()
) -> RunResult:
    return Engine(target, subscribers).run(rollback_runbook(target, params))


def upgrade_with_rollback(
    target: Target,
    params: Mapping[str, Any],
    *,
    auto_rollback: bool,
    subscribers: Sequence[Subscriber] = (),
    rollback_health_timeout: int = DEFAULT_HEALTH_TIMEOUT,
) -> UpgradeOutcome:
    """Run the upgrade; when a step or gate fails and auto_rollback is on, roll back at once.

    Errors raised before a run exists (lock held, bad input) propagate unchanged."""
    engine = Engine(target, subscribers)
    try:
        result = engine.run(upgrade_runbook(target, params))
        return UpgradeOutcome("upgraded", ExitCode.OK, result)
    except RecoveryError as exc:
        failed = failed_run(exc)
        if failed is None:
            raise
        if isinstance(exc, PreconditionFailed) and failed.failed_step == "preflight":
            return UpgradeOutcome(
                "refused",
                ExitCode.REFUSED,
                failed,
                failed_gate="preflight",
                reason=exc.message,
                error_code=exc.code,
            )
        gate, reason = failed_gate_of(failed), exc.message
    if not auto_rollback:
        return UpgradeOutcome(
            "failed",
            ExitCode.FAILED,
            failed,
            failed_gate=gate,
            reason=f"{reason}; run `recovery rollback` to undo it",
            error_code=failed.code,
        )
    try:
        rolled = run_rollback(
            target,
            rollback_params(upgrade_run=failed.run_id, health_timeout=rollback_health_timeout),
            subscribers,
        )
    except RecoveryError as exc:
        return UpgradeOutcome(
            "rollback_failed",
            ExitCode.ROLLBACK_FAILED,
            failed,
            failed_run(exc),
            failed_gate=gate,
            reason=f"{reason}; the rollback failed too: {exc.message}",
            error_code="rollback.failed",
        )
    return UpgradeOutcome(
        "rolled_back",
        ExitCode.ROLLED_BACK,
        failed,
        rolled,
        failed_gate=gate,
        reason=reason,
        error_code="upgrade.rolled_back",
    )
