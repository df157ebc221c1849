"""The `failback` runbook: bring the old writer back as a standby of the writer, losing nothing it
acknowledged.

observe and decide -> fence the old writer (it stays so until rebuilt) -> carry what it acknowledged
after the split (the writer's promotion, from the site record) into the writer with the carry-over's
rules, orders it cannot carry listed for a person, then check every such order is on the writer or on
that list -> rebuild it as a standby (pg_rewind, else a fresh base backup) and wait until it streams at
the current generation -> give its service back the security group rule a failover's cloud-level
fence revoked (network_fence.py; nothing to do elsewhere) -> let the SECONDARY failover record point
at it -> verify -> record.
`recovery failback --switch-back` then runs a switchover back to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from recovery.drivers import db as db_driver
from recovery.engine import Runbook, RunContext, Step, TypedOutput, register_runbook
from recovery.errors import PreconditionFailed, VerificationFailed
from recovery.failover.decide import decide_failback
from recovery.failover.network_fence import restore_service_ingress
from recovery.failover.observe import observe
from recovery.failover.platform import wait_replayed
from recovery.failover.service import confirm_no_writes
from recovery.failover.state import SiteName
from recovery.failover.traffic import point_traffic
from recovery.restore.carryover import LOOKBACK, carry_over_split
from recovery.restore.handover import write_handover
from recovery.runbooks.failover import platform_for
from recovery.targets.model import Target
from recovery.targets.sites import read_site_record

STREAM_TIMEOUT_SECONDS = 120


class FailbackDecided(TypedOutput):
    reason: str
    old: SiteName
    writer: SiteName
    epoch: int
    split_at: str


class CarriedOver(TypedOutput):
    after_split: int  # orders the old writer holds that it wrote or changed after the split
    orders_inserted: int
    orders_updated: int
    transactions: int
    stock_updates: int
    needs_a_person: int
    needs_a_person_file: str | None


def _observe(ctx: RunContext) -> FailbackDecided:
    state = observe(ctx.target, platform_for(ctx.target))
    decision = decide_failback(state)
    ctx.note(decision.reason, action=decision.action)
    if decision.action != "failback" or decision.to is None:
        raise PreconditionFailed(decision.reason, code="failback.refused")
    record = read_site_record(ctx.target.state_dir)
    if record.changed_at is None:
        raise PreconditionFailed(
            f"the site record names no promotion time for the {state.writer} site, so the split is unknown; "
            "carry the old writer's orders over by hand before rebuilding it",
            code="failback.no_split",
        )
    return FailbackDecided(
        reason=decision.reason,
        old=decision.to,
        writer=state.writer,
        epoch=state.epoch,
        split_at=record.changed_at,
    )


def _fence(ctx: RunContext) -> dict[str, Any]:
    decided = ctx.output("observe", FailbackDecided)
    old = ctx.target.site(decided.old)
    means = (*platform_for(ctx.target).fence(old), confirm_no_writes(old, timeout=5))
    unconfirmed = [f"{m.means}: {m.detail}" for m in means if not m.confirmed]
    if unconfirmed:
        raise PreconditionFailed(
            f"the {decided.old} site could not be fenced ({'; '.join(unconfirmed)}); nothing was carried or "
            "rebuilt: fix that, then resume this run",
            code="failback.fence_unconfirmed",
        )
    return {"means": [{"means": m.means, "detail": m.detail} for m in means]}


def _orders_after(database: Any, since: datetime) -> set[str]:
    with db_driver.connect(database) as conn:
        rows = conn.execute(
            "SELECT id::text FROM orders WHERE created_at >= %s OR updated_at >= %s", (since, since)
        ).fetchall()
    return {str(r[0]) for r in rows}


def _carry_over(ctx: RunContext) -> CarriedOver:
    """The old writer's writes after the split go into the writer; then every order it changed after
    the split must be on the writer or on the list for a person, or nothing is rebuilt."""
    decided = ctx.output("observe", FailbackDecided)
    old, writer = ctx.target.site(decided.old).database, ctx.target.site(decided.writer).database
    report = carry_over_split(old, writer, split_at=decided.split_at)
    handed = [
        {
            "order_id": d.order_id,
            "status": d.status,
            "total_cents": d.total_cents,
            "items_cents": d.items_cents,
            "payments": list(d.payments),
            "reason": d.reason,
        }
        for d in report.damaged
    ]
    path = write_handover(ctx.target.state_dir, ctx.run_id, handed) if handed else None
    for order in handed:
        ctx.note(f"NEEDS A PERSON: order {order['order_id']}: {order['reason']}", order_id=order["order_id"])
    since = datetime.fromisoformat(decided.split_at) - LOOKBACK
    after = _orders_after(old, since)
    missing = after - _orders_after(writer, since) - {o["order_id"] for o in handed}
    if missing:
        raise VerificationFailed(
            f"{len(missing)} orders of the {decided.old} site are neither on the writer nor listed for a "
            f"person (e.g. {sorted(missing)[0]}); nothing was rebuilt: resume this run",
            code="failback.carry_over_incomplete",
        )
    return CarriedOver(
        after_split=len(after),
        orders_inserted=report.orders_inserted,
        orders_updated=report.orders_updated,
        transactions=report.transactions,
        stock_updates=report.stock_updates,
        needs_a_person=len(handed),
        needs_a_person_file=str(path) if path else None,
    )


def _rebuild(ctx: RunContext) -> dict[str, Any]:
    decided = ctx.output("observe", FailbackDecided)
    platform = platform_for(ctx.target)
    old, writer = ctx.target.site(decided.old), ctx.target.site(decided.writer)
    rebuilt = platform.rebuild_as_standby(old, writer, ctx.run_id)
    ctx.note(f"the {decided.old} site was rebuilt by {rebuilt.method}: {rebuilt.detail}")
    position = platform.write_position(writer)
    if wait_replayed(platform, old, position, timeout=STREAM_TIMEOUT_SECONDS, poll=0.2) is None:
        raise VerificationFailed(
            f"the rebuilt {decided.old} site did not catch up with the writer within "
            f"{STREAM_TIMEOUT_SECONDS} s; see its server log, then resume this run",
            code="failback.not_streaming",
        )
    return {"method": rebuilt.method, "detail": rebuilt.detail, "set_aside": rebuilt.set_aside}


def _readmit_service(ctx: RunContext) -> dict[str, Any]:
    """The rule the failover's cloud-level fence revoked, given back now that the site is a standby."""
    decided = ctx.output("observe", FailbackDecided)
    given_back = restore_service_ingress(ctx.target, ctx.target.site(decided.old))
    if given_back:
        ctx.note(given_back)
    return {"given_back": given_back}


def _move_traffic(ctx: RunContext) -> dict[str, Any]:
    decided = ctx.output("observe", FailbackDecided)
    records = point_traffic(ctx.target, decided.writer, standby_healthy=True)
    return {"primary_record": records.primary, "secondary_record": records.secondary}


def _verify(ctx: RunContext) -> dict[str, Any]:
    decided = ctx.output("observe", FailbackDecided)
    state = observe(ctx.target, platform_for(ctx.target))
    writers = [site.name for site in state.sites if site.database.writable]
    old = state.site(decided.old).database
    problems = []
    if writers != [decided.writer]:
        problems.append(
            f"writable databases: {', '.join(writers) or 'none'} (expected {decided.writer} only)"
        )
    if not old.in_recovery or old.epoch != decided.epoch:
        problems.append(f"the {decided.old} site is not a standby of generation {decided.epoch}")
    if problems:
        raise VerificationFailed(f"after the failback: {'; '.join(problems)}")
    return {
        "writer": decided.writer,
        "standby": decided.old,
        "epoch": decided.epoch,
        "lag_bytes": old.lag_bytes,
    }


def failback_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    steps = (
        Step(
            "observe",
            "Observe both sites and decide whether the old writer needs rebuilding",
            _observe,
            mutating=False,
        ),
        Step("fence", "Keep the old writer fenced while its writes are read", _fence),
        Step(
            "carry-over",
            "Carry what the old writer acknowledged after the split into the writer",
            _carry_over,
        ),
        Step(
            "rebuild", "Rebuild the old writer as a standby (pg_rewind, else a fresh base backup)", _rebuild
        ),
        Step(
            "readmit-service",
            "Give the rebuilt standby's service back the security group rule a failover revoked",
            _readmit_service,
        ),
        Step("move-traffic", "Let the SECONDARY failover record point at the rebuilt standby", _move_traffic),
        Step("verify", "Check one writer and a standby of the current generation", _verify, mutating=False),
    )
    return Runbook(
        name="failback",
        steps=steps,
        params=dict(params),
        confirm=f"a failback rewinds the old writer of {target.name}: what it wrote after the split is "
        "carried over first",
    )


register_runbook("failback", failback_runbook)
