"""The intake's I/O at the toolkit's side: the catalog snapshot rows are checked against, the record of
what was queued (so a second run of the same file queues nothing twice), the queue of a target, and the
replay of that queue into the target's order service (the CLI and the runbooks' last step share it)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from recovery.drivers import db
from recovery.drivers.aws import AwsDriver
from recovery.drivers.orderservice import call
from recovery.errors import UsageError
from recovery.intake.csv_orders import Catalog, Product
from recovery.intake.queue import IntakeQueue
from recovery.intake.record import IntakeOrder
from recovery.intake.replay import REPLAY_WORKERS, ReplayOutcome, replay
from recovery.notify.publish import Notifier
from recovery.notify.templates import PENDING_EVENT, load_templates
from recovery.targets.model import Target

QUEUED = Path("intake") / "queued.jsonl"


def read_catalog(target: Target) -> Catalog:
    """Users by e-mail and products by SKU, read from the writer's database (read-only, one snapshot)."""
    with db.connect(target.writable.database, autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        users = {
            str(email).lower(): int(str(uid)) for uid, email in conn.execute("SELECT id, email FROM users")
        }
        products = {
            str(sku): Product(int(str(pid)), int(str(price)))
            for pid, sku, price in conn.execute("SELECT id, sku, price_cents FROM products")
        }
        conn.rollback()
    return Catalog(users, products)


def intake_queue(target: Target) -> IntakeQueue:
    if not target.intake_queue_url:
        raise UsageError(
            f"target {target.name} names no intake queue; set intake_queue_url in its target.yaml",
            code="intake.no_queue",
        )
    # An AWS queue URL names its region. A local endpoint's (the lab's) does not: its queue was made in the
    # primary site's region, and stays there whichever site writes after a failover.
    return IntakeQueue(AwsDriver(target.aws), target.intake_queue_url, target.primary.region)


def queued_ids(target: Target) -> set[uuid.UUID]:
    """Every order id this controller queued for the target (a torn last line is skipped)."""
    path = target.state_dir / QUEUED
    found: set[uuid.UUID] = set()
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                found.add(uuid.UUID(json.loads(line)["order_id"]))
            except (ValueError, KeyError, TypeError):
                continue
    return found


def record_queued(target: Target, order: IntakeOrder, message_id: str) -> None:
    """Append one queued order (fsync'd) after SQS accepted it: a crash before this line at worst
    queues the order again, which the replay's idempotency makes harmless."""
    path = target.state_dir / QUEUED
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {"order_id": str(order.order_id), "reference": order.reference, "message_id": message_id},
        sort_keys=True,
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def pending_notice_vars(target: Target) -> dict[str, str]:
    """The order service role's variables for "received, pending" from the service itself: the target's
    customer topic and its `customer/order-pending` template as the toolkit checked it. Empty without an
    intake queue or a customer topic (the 202 answer is then the only "received, pending")."""
    if not (target.intake_queue_url and target.customer_topic_arn):
        return {}
    subject, body = load_templates(target.notification_templates).source_text(PENDING_EVENT)
    return {
        "order_service_customer_topic_arn": target.customer_topic_arn,
        "order_service_pending_subject": subject,
        "order_service_pending_body": body,
    }


def replay_target(
    target: Target,
    *,
    limit: int | None = None,
    workers: int = REPLAY_WORKERS,
    queue: IntakeQueue | None = None,
) -> ReplayOutcome:
    """Replay the target's intake queue (`queue`, when the caller has it open) through its front door;
    customers hear of each order."""
    url = target.traffic.front_door_url
    return replay(
        queue or intake_queue(target),
        lambda body: call(url, "POST", "/orders", body),
        notifier=Notifier(target),
        limit=limit,
        workers=workers,
    )


def replay_document(outcome: ReplayOutcome) -> dict[str, object]:
    """A replay's outcome as the CLI and the journal show it."""
    return {
        "created": outcome.created,
        "already_present": outcome.present,
        "set_aside": [{"order_id": s.order_id, "reason": s.reason} for s in outcome.set_aside],
        "stopped": outcome.stopped,
    }
