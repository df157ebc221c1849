"""Replay: drain the intake queue into the order service once the core takes writes again, exactly once.

Each message is posted to the service under its own order id and deleted only after the service has the
order (HTTP 201 created, or 200: it was already there, from an earlier attempt that crashed before the
delete). A message the service can never accept (unknown user or product, malformed, a conflicting id) is
set aside in the dead-letter queue with the service's reason and listed for a person; the customer is told
it needs attention. An answer that means "not now" (202 still degraded, 5xx, no answer) stops the replay
and puts the message straight back, so a later replay continues where this one stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from recovery.errors import ExternalFailure
from recovery.intake.queue import IntakeQueue, Received
from recovery.notify.publish import Notifier

Verdict = Literal["created", "present", "poison", "later"]
PostOrder = Callable[[dict[str, Any]], tuple[int, Any]]
POISON_STATUSES = frozenset({400, 404, 409, 422})


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


def replay(
    queue: IntakeQueue,
    post: PostOrder,
    *,
    notifier: Notifier | None = None,
    limit: int | None = None,
) -> ReplayOutcome:
    created = present = 0
    set_aside: list[SetAside] = []
    handled = 0
    while limit is None or handled < limit:
        batch = queue.receive(limit=10 if limit is None else min(10, limit - handled))
        if not batch:
            return ReplayOutcome(created, present, tuple(set_aside), None)
        for index, received in enumerate(batch):
            if received.order is None:
                reason = f"not an intake order: {received.poison}"
                queue.dead_letter(received, reason)
                set_aside.append(SetAside(None, reason))
                handled += 1
                continue
            try:
                verdict, reason = classify(*post(received.order.service_body()))
            except ExternalFailure as exc:
                verdict, reason = "later", exc.message
            if verdict == "later":
                queue.release(batch[index:])
                return ReplayOutcome(created, present, tuple(set_aside), reason)
            if verdict == "poison":
                queue.dead_letter(received, reason)
                set_aside.append(SetAside(str(received.order.order_id), reason))
                _tell_customer(notifier, "customer/order-needs-attention", received)
            else:
                queue.delete(received)
                created += verdict == "created"
                present += verdict == "present"
                _tell_customer(notifier, "customer/order-confirmed", received)
            handled += 1
    return ReplayOutcome(created, present, tuple(set_aside), f"stopped after {limit} orders as asked")
