"""Degraded mode: "received, pending" to the customer topic for an order the service put in the intake queue.

Published by the service, right after SQS stored the order, because at that moment nothing else knows of it:
the database is down, and reading the queue to find new orders would count as a receive toward its redrive
policy (SQS moves a message to the dead-letter queue after five) and hide it from a replay running then.

The message never holds the order up or takes it back: the 202 does not wait for it (threads of their
own publish from a bounded buffer; a full buffer drops the message, logged), and a publish that fails is
logged and forgotten. A clean stop waits a few seconds for what is already handed over. Each order id is
told once per service process: a client retrying the same order while the database is still down gets
its 202 again but no second message.

The text is the toolkit's `customer/order-pending` template, checked there and handed over by the deploy
(subject and body with `${order_id}` and `${received_at}`, the only fields it offers): the service never
imports the toolkit, and a team edits one file for both.
"""

from __future__ import annotations

import collections
import logging
import queue
import string
import threading
from typing import Any

from orderservice.config import PendingNotice

log = logging.getLogger("orderservice.notices")

EVENT = "customer/order-pending"
SUBJECT_LIMIT = 100  # SNS refuses a longer subject, or one with a line break
BUFFER = 1_000  # messages waiting for the publishers; an incident's orders arrive at tens per second
# Publishers at once: one publish takes tens of milliseconds on a busy host, and orders queue at tens per
# second, so one thread alone falls behind and a restart then drops what waits.
PUBLISHERS = 4
REMEMBERED = 100_000  # order ids already told, oldest forgotten first


def render(notice: PendingNotice, order_id: str, received_at: str) -> tuple[str, str]:
    """(subject, body) for one order. Pure. Only the two offered fields are filled."""
    fields = {"order_id": order_id, "received_at": received_at}
    subject = " ".join(string.Template(notice.subject).safe_substitute(fields).split())
    if len(subject) > SUBJECT_LIMIT:
        subject = subject[: SUBJECT_LIMIT - 3] + "..."
    return subject, string.Template(notice.body).safe_substitute(fields).strip() + "\n"


class PendingNotices:
    """Tells customers their queued order was received: once per order id, never in the request's way."""

    def __init__(self, notice: PendingNotice, client_factory: Any) -> None:
        self.notice = notice
        self._client_factory = client_factory  # () -> an SNS client; made on first use, then shared
        self._client: Any = None
        self._waiting: queue.Queue[tuple[str, str]] = queue.Queue(maxsize=BUFFER)
        self._told: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._lock = threading.Lock()
        for number in range(PUBLISHERS):
            name = f"pending-notices-{number}"
            threading.Thread(target=self._publish_forever, name=name, daemon=True).start()

    def tell(self, order_id: str, received_at: str) -> None:
        """Hand one queued order to the publisher; returns at once."""
        with self._lock:
            if order_id in self._told:
                return
            self._told[order_id] = None
            if len(self._told) > REMEMBERED:
                self._told.popitem(last=False)
        try:
            self._waiting.put_nowait((order_id, received_at))
        except queue.Full:
            log.warning("no 'received, pending' message for order %s: the publisher is behind", order_id)

    def drain(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for what was handed over to be published (a clean stop: the
        supervisor's TERM leaves 15 s before KILL); whether nothing is left."""
        done = threading.Event()
        threading.Thread(target=lambda: (self._waiting.join(), done.set()), daemon=True).start()
        return done.wait(timeout)

    def _sns(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._client_factory()
            return self._client

    def _publish_forever(self) -> None:
        while True:
            order_id, received_at = self._waiting.get()
            try:
                subject, body = render(self.notice, order_id, received_at)
                self._sns().publish(
                    TopicArn=self.notice.topic_arn,
                    Subject=subject,
                    Message=body,
                    MessageAttributes={"event": {"DataType": "String", "StringValue": EVENT}},
                )
            except Exception as exc:  # the order is safe in the queue; only its message is lost
                log.warning("no 'received, pending' message for order %s: %s", order_id, type(exc).__name__)
            finally:
                self._waiting.task_done()
