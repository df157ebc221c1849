"""The last step of the runbooks that end an incident (rollback, restore): replay the intake queue.

While the database could not take writes (fenced, being swapped), the order service put orders into the
intake queue and answered 202 "accepted, pending". Once the runbook has the service writing again, this
step enters them exactly once (recovery/intake/replay.py) and tells their customers. It changes nothing
when the target has no queue or the queue is empty, and it never fails the incident's runbook: the
incident is over either way, and what is left in the queue (the service said "not now", the queue did not
answer) is named with the command that continues it. An operator can run `recovery intake replay` at any
time; both are safe together, since each order is keyed by its id.
"""

from __future__ import annotations

import time

from recovery.engine import RunContext, Step
from recovery.errors import RecoveryError
from recovery.intake.book import intake_queue, replay_document, replay_target

STEP = "replay-intake"
AGAIN = "run `recovery intake replay` to enter the rest"


def replay_intake(ctx: RunContext) -> dict[str, object]:
    target = ctx.target
    if not target.intake_queue_url:
        return {"skipped": "the target names no intake queue"}
    try:
        queue = intake_queue(target)
        waiting = queue.status().waiting
        if waiting == 0:
            return {"skipped": "the intake queue is empty"}
        ctx.progress(f"replaying about {waiting} orders queued during the incident")
        started = time.monotonic()
        outcome = replay_target(target, queue=queue)
    except RecoveryError as exc:
        ctx.note(f"the intake queue was not replayed: {exc.message}; {AGAIN}")
        return {"replayed": 0, "stopped": exc.message, "code": exc.code}
    seconds = time.monotonic() - started
    doc = replay_document(outcome)
    if outcome.stopped:
        ctx.note(f"the replay stopped: {outcome.stopped}; {AGAIN}")
    if outcome.set_aside:
        ctx.note(
            f"{len(outcome.set_aside)} queued orders were set aside for a person (`recovery intake status`)"
        )
    return {
        **doc,
        "seconds": round(seconds, 3),
        "per_second": round(outcome.replayed / seconds, 1) if seconds > 0 else None,
    }


def replay_intake_step() -> Step:
    return Step(
        STEP,
        "enter the orders queued while the database could not take writes, exactly once, and tell customers",
        replay_intake,
        acts_on=("intake queue",),
    )
