"""The site runbooks: `switchover` (planned, zero loss), `failover` (unplanned) and `failback`.

Switchover: observe and decide -> fence the writer (its database refuses writes and its service reports
so, both confirmed, else the fence is lifted and the run refused) -> wait until the standby replayed
everything -> promote -> open the new writer (fences lifted, generation recorded, its service writable)
-> move traffic -> verify -> record. Failover: the same without the replay wait; the fence is tried by
every means and whatever could not be confirmed is recorded. Failback: fence the returning old writer,
carry what it acknowledged after the split into the writer, rebuild it as a standby, let traffic fail
over to it again. Decisions are `recovery.failover.decide`'s; the steps act on them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from recovery.drivers import db as db_driver
from recovery.engine import Runbook, RunContext, Step, TypedOutput, register_runbook
from recovery.errors import PreconditionFailed, UsageError, VerificationFailed
from recovery.failover.decide import Decision, decide_failover, decide_switchover
from recovery.failover.infrastructure import fence_infrastructure
from recovery.failover.observe import observe
from recovery.failover.platform import DatabasePlatform, FenceMeans, wait_replayed
from recovery.failover.rds import RdsPlatform
from recovery.failover.selfmanaged import SelfManaged
from recovery.failover.service import confirm_no_writes, host_health, wait_writable
from recovery.failover.state import ClusterState, SiteName, other
from recovery.failover.traffic import point_traffic, prepare_traffic, record_ttl
from recovery.runbooks.replay_intake import replay_intake_step
from recovery.targets.model import Target
from recovery.targets.sites import SiteRecord, read_site_record, write_site_record
from recovery.verify.invariants import run_invariants
from recovery.verify.smoke import SmokeReport, smoke_test

REPLAY_TIMEOUT_SECONDS = 60
SITES: tuple[SiteName, ...] = ("primary", "standby")


def platform_for(target: Target) -> DatabasePlatform:
    """The database platform of the target's sites: self-managed PostgreSQL, or RDS (both sites alike)."""
    kinds = {target.primary.database.kind, target.standby.database.kind}
    if kinds == {"rds"}:
        return RdsPlatform(target)
    if kinds != {"self-managed"}:
        raise UsageError(
            f"target {target.name}: one site's database is on RDS and the other is not; failover needs "
            "both sites on the same kind of database"
        )
    return SelfManaged((target.writable, target.replica))


def _site(value: Any) -> SiteName:
    if value not in SITES:
        raise UsageError(f"unknown site {value!r}; give primary or standby")
    return value  # type: ignore[no-any-return]


class Decided(TypedOutput):
    action: str
    reason: str
    source: SiteName
    to: SiteName
    epoch: int  # the generation before this run
    decided_at: float  # Unix time, for the time from the decision to a verified writer
    lag_bytes: int | None = None
    lag_seconds: float | None = None


class Fenced(TypedOutput):
    site: SiteName
    started_at: float
    means: tuple[dict[str, Any], ...]
    unconfirmed: tuple[str, ...]
    # The new writer's Route53 health check (none: a load balancer alias evaluated on its targets alone),
    # found before anything is fenced, like everything else the move needs.
    health_check: str | None


class Replayed(TypedOutput):
    position: str
    waited_seconds: float


class Promoted(TypedOutput):
    site: SiteName
    lsn: str
    timeline: int
    already: bool
    promoted_at: str  # ISO time: the split, from which a failback looks for the old writer's writes
    lag_bytes: int | None
    lag_seconds: float | None


class Opened(TypedOutput):
    epoch: int
    writable_at: float
    service_waited_seconds: float


class Verified(TypedOutput):
    writers: tuple[SiteName, ...]
    traffic_to: SiteName | None
    invariants_passed: bool
    smoke_passed: bool
    verified_at: float


def _state_sentence(state: ClusterState) -> dict[str, Any]:
    return {
        site.name: {
            "database": "unreachable"
            if not site.database.reachable
            else ("writable" if site.database.writable else "read-only"),
            "epoch": site.database.epoch,
            "service": "healthy" if site.service.healthy else (site.service.problem or "not answering"),
        }
        for site in state.sites
    }


def _decided(ctx: RunContext, state: ClusterState, decision: Decision, accept: str) -> Decided:
    ctx.note(decision.reason, action=decision.action, sites=_state_sentence(state))
    if decision.action != accept or decision.to is None:
        raise PreconditionFailed(decision.reason, code=f"{ctx.runbook}.refused")
    return Decided(
        action=decision.action,
        reason=decision.reason,
        source=other(decision.to),
        to=decision.to,
        epoch=state.epoch,
        decided_at=time.time(),
        lag_bytes=decision.expected_loss_bytes,
        lag_seconds=decision.expected_loss_seconds,
    )


# --- switchover --------------------------------------------------------------------------------------


def _observe_switchover(ctx: RunContext) -> Decided:
    to = ctx.params.get("to")
    state = observe(ctx.target, platform_for(ctx.target))
    return _decided(ctx, state, decide_switchover(state, _site(to) if to else None), "switchover")


def _fence_planned(ctx: RunContext) -> Fenced:
    """Fence the writer, confirmed by both means; a fence that cannot be confirmed is lifted again and
    the run refused, so a refused switchover leaves the writer as it was."""
    decided = ctx.output("observe", Decided)
    platform, source = platform_for(ctx.target), ctx.target.site(decided.source)
    silent = [h.name for h in source.hosts if not host_health(h).answering]
    if silent:
        raise PreconditionFailed(
            f"the fence of the {decided.source} site cannot be confirmed: the service on {', '.join(silent)} "
            "does not answer /health; nothing was changed: bring it back (or use `recovery failover` if the "
            "site is lost)",
            code="switchover.fence_unconfirmable",
        )
    check = prepare_traffic(ctx.target, decided.to)  # checked, so moving traffic is one change later
    started = time.time()
    means = (*platform.fence(source), confirm_no_writes(source))
    unconfirmed = tuple(f"{m.means}: {m.detail}" for m in means if not m.confirmed)
    if unconfirmed:
        platform.open_for_writes(source, decided.epoch)
        raise PreconditionFailed(
            f"the fence of the {decided.source} site could not be confirmed ({'; '.join(unconfirmed)}); "
            "it was lifted again and nothing was promoted",
            code="switchover.fence_unconfirmable",
        )
    return _fenced(decided.source, started, means, check)


def _fenced(
    site: SiteName, started: float, means: tuple[FenceMeans, ...], health_check: str | None
) -> Fenced:
    return Fenced(
        site=site,
        started_at=started,
        means=tuple({"means": m.means, "confirmed": m.confirmed, "detail": m.detail} for m in means),
        unconfirmed=tuple(f"{m.means}: {m.detail}" for m in means if not m.confirmed),
        health_check=health_check,
    )


def _wait_replay(ctx: RunContext) -> Replayed:
    decided = ctx.output("observe", Decided)
    platform = platform_for(ctx.target)
    source, standby = ctx.target.site(decided.source), ctx.target.site(decided.to)
    position = platform.write_position(source)
    waited = wait_replayed(platform, standby, position, timeout=REPLAY_TIMEOUT_SECONDS)
    if waited is None:
        raise PreconditionFailed(
            f"the {decided.to} site did not replay up to {position} within {REPLAY_TIMEOUT_SECONDS} s; "
            f"the {decided.source} site stays fenced: resume this run once replication works",
            code="switchover.replay_timeout",
        )
    return Replayed(position=position, waited_seconds=round(waited, 3))


def _promote(ctx: RunContext) -> Promoted:
    decided = ctx.output("observe", Decided)
    promotion = platform_for(ctx.target).promote(ctx.target.site(decided.to))
    ctx.note(
        f"the {decided.to} site's database is promoted (timeline {promotion.timeline}, at {promotion.lsn})",
        already=promotion.already,
    )
    return Promoted(
        site=decided.to,
        lsn=promotion.lsn,
        timeline=promotion.timeline,
        already=promotion.already,
        promoted_at=datetime.now(UTC).isoformat(),
        lag_bytes=decided.lag_bytes,
        lag_seconds=decided.lag_seconds,
    )


def _open_for_writes(ctx: RunContext) -> Opened:
    """The new writer's generation goes into its database and the site record (one more than before,
    so an old primary that returns carries an older one), its fences are lifted, and its service must
    report a writable database."""
    decided = ctx.output("observe", Decided)
    promoted = ctx.output("promote", Promoted)
    epoch = decided.epoch + 1
    site = ctx.target.site(decided.to)
    platform_for(ctx.target).open_for_writes(site, epoch)
    record = read_site_record(ctx.target.state_dir)
    if record.run_id != ctx.run_id:
        write_site_record(
            ctx.target.state_dir,
            SiteRecord(
                writer=decided.to,
                epoch=epoch,
                run_id=ctx.run_id,
                changed_at=promoted.promoted_at,
                split_lsn=promoted.lsn,
            ),
        )
    waited = wait_writable(site)
    return Opened(epoch=epoch, writable_at=time.time(), service_waited_seconds=round(waited, 3))


def _move_traffic(ctx: RunContext) -> dict[str, Any]:
    decided = ctx.output("observe", Decided)
    check = ctx.output("fence", Fenced).health_check
    records = point_traffic(ctx.target, decided.to, standby_healthy=False, health_check=check)
    return {"primary_record": records.primary, "secondary_record": records.secondary, "moved_at": time.time()}


def _smoke_through_front_door(ctx: RunContext) -> SmokeReport:
    """A smoke order through the front door. Clients follow a changed record within its TTL, so a smoke
    test that fails at its first step (health) is tried again until the TTL has passed."""
    deadline = time.monotonic() + record_ttl(ctx.target) * 2
    while True:
        smoke = smoke_test(ctx.target.traffic.front_door_url)
        first_failed = next((s.name for s in smoke.steps if not s.passed), None)
        if smoke.passed or first_failed != "health" or time.monotonic() > deadline:
            return smoke
        ctx.progress("the front door does not reach the new writer yet; trying again")
        time.sleep(0.5)


def _verify(ctx: RunContext) -> Verified:
    """One writable database (the new writer's), the record pointing at it, its invariants hold and a
    customer can order through the front door."""
    decided = ctx.output("observe", Decided)
    state = observe(ctx.target, platform_for(ctx.target))
    writers = tuple(site.name for site in state.sites if site.database.writable)
    with db_driver.connect(ctx.target.site(decided.to).database) as conn:
        invariants = run_invariants(conn, "public", since=datetime.fromtimestamp(decided.decided_at, UTC))
    smoke = _smoke_through_front_door(ctx)
    verified = Verified(
        writers=writers,
        traffic_to=state.traffic_to,
        invariants_passed=invariants.passed,
        smoke_passed=smoke.passed,
        verified_at=time.time(),
    )
    problems = []
    if writers != (decided.to,):
        problems.append(f"writable databases: {', '.join(writers) or 'none'} (expected {decided.to} only)")
    if state.traffic_to != decided.to:
        problems.append(f"the PRIMARY record points at {state.traffic_to or 'no site'}")
    if not invariants.passed:
        problems.append("business invariants fail on the new writer")
    if not smoke.passed:
        failed = next((s for s in smoke.steps if not s.passed), None)
        problems.append(f"smoke test failed at {failed.name if failed else '?'}")
    if problems:
        raise VerificationFailed(f"after the move to the {decided.to} site: {'; '.join(problems)}")
    return verified


def _rejoin(ctx: RunContext) -> dict[str, Any]:
    """A planned switchover leaves no diverged writes behind: the old writer is rewound at once into a
    standby of the new one, and the SECONDARY record follows it."""
    decided = ctx.output("observe", Decided)
    platform = platform_for(ctx.target)
    old, writer = ctx.target.site(decided.source), ctx.target.site(decided.to)
    rebuilt = platform.rebuild_as_standby(old, writer, ctx.run_id)
    ctx.note(f"the {decided.source} site was rebuilt as a standby by {rebuilt.method}: {rebuilt.detail}")
    records = point_traffic(ctx.target, decided.to, standby_healthy=True)
    return {"method": rebuilt.method, "detail": rebuilt.detail, "secondary_record": records.secondary}


def _record(ctx: RunContext) -> dict[str, Any]:
    decided = ctx.output("observe", Decided)
    fenced = ctx.output("fence", Fenced)
    opened = ctx.output("open-for-writes", Opened)
    verified = ctx.output("verify", Verified)
    promoted = ctx.output("promote", Promoted)
    # Writes are refused from the fence until the new writer is open AND the record points at it.
    moved_at = float(ctx.outputs["move-traffic"]["moved_at"])
    result = {
        "from": decided.source,
        "to": decided.to,
        "epoch": opened.epoch,
        "writes_refused_seconds": round(max(opened.writable_at, moved_at) - fenced.started_at, 3),
        "decision_to_verified_seconds": round(verified.verified_at - decided.decided_at, 3),
        "lag_at_promotion_bytes": promoted.lag_bytes,
        "lag_at_promotion_seconds": promoted.lag_seconds,
        "fence_unconfirmed": list(fenced.unconfirmed),
    }
    ctx.note(
        f"the {decided.to} site takes writes at generation {opened.epoch}; writes were refused for "
        f"{result['writes_refused_seconds']} s",
        **result,
    )
    return result


# What a switchover and a failover share once the old writer is fenced (and, planned, replayed).
_MOVE_STEPS = (
    Step("promote", "Promote the standby's database", _promote),
    Step(
        "open-for-writes",
        "Record the new generation and open the new writer to its service",
        _open_for_writes,
    ),
    Step("move-traffic", "Point the Route53 failover records at the new writer", _move_traffic),
    Step(
        "verify",
        "Check one writer, the traffic record, invariants and a smoke order",
        _verify,
        mutating=False,
    ),
)


def switchover_params(to: str | None) -> dict[str, Any]:
    return {"to": _site(to) if to else None}


def switchover_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    steps = (
        Step(
            "observe",
            "Observe both sites and decide whether a switchover is safe",
            _observe_switchover,
            mutating=False,
        ),
        Step(
            "fence", "Fence the writer: its database refuses writes, its service reports so", _fence_planned
        ),
        Step("wait-replay", "Wait until the standby replayed everything the writer wrote", _wait_replay),
        *_MOVE_STEPS,
        Step("rejoin", "Rewind the old writer into a standby of the new one", _rejoin),
        Step("record", "Record the window of refused writes and what was lost", _record, mutating=False),
        replay_intake_step(),
    )
    return Runbook(
        name="switchover",
        steps=steps,
        params=dict(params),
        confirm=f"a switchover fences the writable database of {target.name} and promotes its standby",
    )


register_runbook("switchover", switchover_runbook)


# --- failover ----------------------------------------------------------------------------------------


def _observe_failover(ctx: RunContext) -> Decided:
    to = ctx.params.get("to")
    allowed = ctx.params.get("max_data_loss_seconds")
    state = observe(ctx.target, platform_for(ctx.target))
    decision = decide_failover(
        state,
        rpo_seconds=ctx.target.objectives.rpo_seconds,
        to=_site(to) if to else None,
        max_data_loss_seconds=None if allowed is None else float(allowed),
    )
    return _decided(ctx, state, decision, "failover")


def _fence_lost(ctx: RunContext) -> Fenced:
    """Fence the lost writer by every means there is, and record which could not be confirmed: SQL,
    else its host over SSH, and below both the target's infrastructure. The failover goes on either
    way (the writer is lost); what was not confirmed is in the record for a person."""
    decided = ctx.output("observe", Decided)
    platform, source = platform_for(ctx.target), ctx.target.site(decided.source)
    check = prepare_traffic(ctx.target, decided.to)
    started = time.time()
    means = [*platform.fence(source), confirm_no_writes(source, timeout=3)]
    if not any(m.confirmed and m.means in ("database", "data-dir", "security-group") for m in means):
        means.append(fence_infrastructure(ctx.target, source, platform.service_role))
    fenced = _fenced(decided.source, started, tuple(means), check)
    for line in fenced.unconfirmed:
        ctx.note(f"fence not confirmed: {line}")
    return fenced


def failover_params(to: str | None, max_data_loss_seconds: float | None) -> dict[str, Any]:
    if max_data_loss_seconds is not None and max_data_loss_seconds < 0:
        raise UsageError("--max-data-loss must be a number of seconds, 0 or more")
    return {"to": _site(to) if to else None, "max_data_loss_seconds": max_data_loss_seconds}


def failover_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    steps = (
        Step(
            "observe", "Observe both sites and decide whether to fail over", _observe_failover, mutating=False
        ),
        Step(
            "fence",
            "Fence the lost writer by every means there is; record what was not confirmed",
            _fence_lost,
        ),
        *_MOVE_STEPS,
        Step("record", "Record the lag at promotion and the fences not confirmed", _record, mutating=False),
        replay_intake_step(),
    )
    return Runbook(
        name="failover",
        steps=steps,
        params=dict(params),
        confirm=f"a failover promotes the standby of {target.name} and may give up its latest writes",
    )


register_runbook("failover", failover_runbook)
