"""Replay: drain the intake queue into the order service once the core takes writes again, exactly once.

Each message is posted to the service under its own order id and deleted only after the service has the
order (HTTP 201 created, or 200: it was already there, from an earlier attempt that crashed before the
delete). A message the service can never accept (unknown user or product, malformed, a conflicting id) is
set aside in the dead-letter queue with the service's reason and listed for a person; the customer is told
it needs attention. An answer that means "not now" (202 still degraded, 5xx, no answer) stops the replay
and puts the message straight back, so a later replay continues where this one stopped.

Messages are received ten at a time (SQS's most), their orders posted a few at once, and the entered
ones deleted in one call: the service's idempotency on the order id makes the order of arrival irrelevant,
and deleting only after the answers keeps every message in the queue until its order is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from recovery.errors import ExternalFailure
from recovery.intake.queue import BATCH, IntakeQueue, Received
from recovery.notify.publish import Notifier

Verdict = Literal["created", "present", "poison", "later"]
PostOrder = Callable[[dict[str, Any]], tuple[int, Any]]
POISON_STATUSES = frozenset({400, 404, 409, 422})
# Orders posted at once. A few in flight hide the round trips (front door, service, database commit)
# that made a one-at-a-time replay slow; more would compete with the live orders the service takes again
# at the same moment, and the service creates an order once per id whatever the order of arrival.
REPLAY_WORKERS = 4


def classify(status: int, document: Any) -> tuple[Verdict, str]:
    """What the service's answer to POST /orders means for the queued message. Pure."""
    message = document.get("message") if isinstance(document, dict) else None
    said = f": {message}" if message else ""
    if status == 201:
        return "created", "created"
    if status == 200:
        return "present", "already there from an earlier attempt"
    if status in POISON_STATUSES:
        return "poison", f"the order service refused it (HTTP {status}{said})"
    if status == 202:
        return "later", "the order service still takes orders into the queue only (degraded)"
    return "later", f"the order service answered HTTP {status}{said}"


@dataclass(frozen=True)
class SetAside:
    order_id: str | None
    reason: str


@dataclass(frozen=True)
class ReplayOutcome:
    created: int
    present: int
    set_aside: tuple[SetAside, ...]
    stopped: str | None  # why the replay stopped before the queue was empty

    @property
    def replayed(self) -> int:
        return self.created + self.present


def _tell_customer(notifier: Notifier | None, event: str, received: Received) -> None:
    if notifier is None or received.order is None:
        return
    order = received.order
    notifier.send(event, {"order_id": str(order.order_id), "received_at": order.received_at.isoformat()})


def _answer(post: PostOrder, received: Received) -> tuple[Verdict, str]:
    assert received.order is not None
    try:
        return classify(*post(received.order.service_body()))
    except ExternalFailure as exc:
        return "later", exc.message


@dataclass
class _Tally:
    created: int = 0
    present: int = 0
    handled: int = 0
    set_aside: list[SetAside] = field(default_factory=list)

    def outcome(self, stopped: str | None) -> ReplayOutcome:
        return ReplayOutcome(self.created, self.present, tuple(self.set_aside), stopped)


def replay(
    queue: IntakeQueue,
    post: PostOrder,
    *,
    notifier: Notifier | None = None,
    limit: int | None = None,
    workers: int = REPLAY_WORKERS,
) -> ReplayOutcome:
    """Drain the queue batch by batch: up to 10 messages received at once, their orders posted `workers`
    at a time, the entered ones deleted in one call. A "not now" answer to any order of a batch stops the
    replay after that batch: what the service has is deleted, the rest is put back at once."""
    tally = _Tally()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="replay") as pool:
        while limit is None or tally.handled < limit:
            batch = queue.receive(limit=BATCH if limit is None else min(BATCH, limit - tally.handled))
            if not batch:
                return tally.outcome(None)
            stopped = _replay_batch(queue, post, notifier, pool, batch, tally)
            if stopped is not None:
                return tally.outcome(stopped)
    return tally.outcome(f"stopped after {limit} orders as asked")


def _replay_batch(
    queue: IntakeQueue,
    post: PostOrder,
    notifier: Notifier | None,
    pool: ThreadPoolExecutor,
    batch: list[Received],
    tally: _Tally,
) -> str | None:
    """Enter one received batch; why the replay must stop, or None."""
    readable = [received for received in batch if received.order is not None]
    answers = dict(
        zip(
            (received.receipt for received in readable),
            pool.map(lambda received: _answer(post, received), readable),
            strict=True,
        )
    )
    entered: list[Received] = []
    put_back: list[Received] = []
    stopped: str | None = None
    for received in batch:
        if received.order is None:
            reason = f"not an intake order: {received.poison}"
            queue.dead_letter(received, reason)
            tally.set_aside.append(SetAside(None, reason))
            tally.handled += 1
            continue
        verdict, reason = answers[received.receipt]
        if verdict == "later":
            put_back.append(received)
            stopped = stopped or reason
        elif verdict == "poison":
            queue.dead_letter(received, reason)
            tally.set_aside.append(SetAside(str(received.order.order_id), reason))
            _tell_customer(notifier, "customer/order-needs-attention", received)
            tally.handled += 1
        else:
            entered.append(received)
            tally.created += verdict == "created"
            tally.present += verdict == "present"
            tally.handled += 1
    # Deleted only now that the service has each of them; a crash before this line makes SQS deliver
    # them again, and the service answers 200 "already there".
    queue.delete_all(entered)
    queue.release(put_back)
    if notifier is not None:
        list(pool.map(lambda r: _tell_customer(notifier, "customer/order-confirmed", r), entered))
    return stopped
