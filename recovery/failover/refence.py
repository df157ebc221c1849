"""Fence a returning old primary again: the one-step runbook the watch runs when the site that is not the
writer takes writes (it restarted by itself with its fence lost, or was never fenced).

A runbook, not a call from the watch, so the fence is taken under the target's lock (never while a
failover or switchover is moving the writer), journaled and announced like every change the toolkit
makes. Its step observes both sites again under the lock and fences only if `decide_returning_site` still
says so: the watch's observation may be a cycle old.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recovery.engine import Runbook, RunContext, Step, register_runbook
from recovery.failover.decide import decide_returning_site
from recovery.failover.observe import observe
from recovery.failover.service import confirm_no_writes
from recovery.runbooks.failover import platform_for
from recovery.targets.model import Target

RUNBOOK = "fence-returning-site"


def _fence(ctx: RunContext) -> dict[str, Any]:
    platform = platform_for(ctx.target)
    state = observe(ctx.target, platform)
    decision = decide_returning_site(state)
    ctx.note(decision.reason, action=decision.action)
    if decision.action != "fence" or decision.to is None:
        return {"action": decision.action, "reason": decision.reason, "site": None, "means": []}
    site = ctx.target.site(decision.to)
    means = (*platform.fence(site), confirm_no_writes(site, timeout=3))
    for m in means:
        if not m.confirmed:
            ctx.note(f"fence not confirmed: {m.means}: {m.detail}")
    return {
        "action": "fence",
        "reason": decision.reason,
        "site": decision.to,
        "means": [{"means": m.means, "confirmed": m.confirmed, "detail": m.detail} for m in means],
    }


def refence_runbook(target: Target, params: Mapping[str, Any]) -> Runbook:
    return Runbook(
        name=RUNBOOK,
        steps=(
            Step(
                "fence",
                "Observe both sites again and fence the site that is not the writer if it takes writes",
                _fence,
            ),
        ),
        params=dict(params),
        confirm=f"fences the database of {target.name}'s site that is not the writer",
    )


register_runbook(RUNBOOK, refence_runbook)
