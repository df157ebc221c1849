"""Replaying the intake queue (moto's SQS in process) into the real order service on PostgreSQL:
exactly once across a crash, poison set aside with its reason, nothing taken while the service is down."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
from conftest import INTAKE_REGION, open_shop

from recovery.drivers.aws import AwsDriver
from recovery.drivers.orderservice import call
from recovery.intake.queue import IntakeQueue
from recovery.intake.record import IntakeItem, IntakeOrder
from recovery.intake.replay import REPLAY_WORKERS, replay


@pytest.fixture
def queue(intake_queue_url: str) -> IntakeQueue:
    return IntakeQueue(AwsDriver(), intake_queue_url, INTAKE_REGION)


@pytest.fixture
def shop(postgres, deploy):  # type: ignore[no-untyped-def]
    run = open_shop(postgres, deploy, "intake")
    yield run
    run.stop()
    postgres.drop_database(run.db)


def order(shop, quantity: int = 1, user_id: int | None = None) -> IntakeOrder:  # type: ignore[no-untyped-def]
    return IntakeOrder(
        order_id=uuid.uuid4(),
        user_id=user_id or shop.user_id,
        items=(IntakeItem(product_id=shop.product_id, quantity=quantity),),
        received_at=datetime.now(UTC),
        channel="web",
    )


def poster(url: str):  # type: ignore[no-untyped-def]
    return lambda body: call(url, "POST", "/orders", body)


def stored(postgres, shop, ids: list[uuid.UUID]) -> dict[str, int]:  # type: ignore[no-untyped-def]
    rows = postgres.query(
        shop.db,
        "SELECT id::text, count(*) FROM orders WHERE id = ANY(%s) GROUP BY id",
        ([str(i) for i in ids],),
    )
    return {order_id: count for order_id, count in rows}


def test_every_queued_order_is_created_once_even_when_a_replay_crashed_midway(queue, shop, postgres) -> None:
    orders = [order(shop) for _ in range(7)]
    for one in orders:
        queue.send(one)
    # A replay that crashed after posting two orders but before deleting them: the service already has
    # them; SQS delivers them again once they become visible.
    for one in orders[:2]:
        assert poster(shop.url)(one.service_body())[0] == 201
    outcome = replay(queue, poster(shop.url))
    assert outcome.stopped is None and outcome.set_aside == ()
    assert (outcome.created, outcome.present) == (5, 2)
    assert stored(postgres, shop, [o.order_id for o in orders]) == {str(o.order_id): 1 for o in orders}
    assert postgres.query(shop.db, "SELECT stock FROM products WHERE sku = 'A'")[0][0] == 93
    assert queue.status().waiting == 0


def test_a_poison_message_goes_to_the_dead_letter_queue_with_its_reason(queue, shop, postgres) -> None:
    good, unknown_user = order(shop), order(shop, user_id=999_999)
    queue.send(good)
    queue.send(unknown_user)
    queue.aws.client("sqs", INTAKE_REGION).send_message(QueueUrl=queue.url, MessageBody="{not json")
    outcome = replay(queue, poster(shop.url))
    assert outcome.created == 1
    reasons = sorted(aside.reason for aside in outcome.set_aside)
    assert reasons == [
        "not an intake order: not JSON (Expecting property name enclosed in double quotes at character 1)",
        "the order service refused it (HTTP 404: user 999999 does not exist)",
    ]
    assert queue.status().dead_letters == 2 and queue.status().waiting == 0


def test_a_service_that_does_not_answer_takes_nothing_and_the_orders_stay_queued(
    queue, shop, postgres
) -> None:
    orders = [order(shop) for _ in range(3)]
    for one in orders:
        queue.send(one)
    shop.stop()
    outcome = replay(queue, poster(shop.url))
    assert outcome.replayed == 0 and outcome.stopped is not None
    assert outcome.stopped.startswith(f"the order service at {shop.url} did not answer POST /orders")
    assert queue.status().waiting == 3  # put back at once, not after the visibility timeout
    shop.start()
    assert shop.wait_listening()
    assert replay(queue, poster(shop.url)).created == 3


def test_a_batch_is_posted_several_at_once_and_each_kind_of_answer_is_kept_apart(
    queue, shop, postgres
) -> None:
    """One received batch holding new orders, orders the service already has, an order it refuses and an
    unreadable message: the posts overlap (never more than the pool), and each message ends where its
    answer sends it."""
    new = [order(shop) for _ in range(6)]
    present = [order(shop) for _ in range(2)]
    refused = order(shop, user_id=999_999)
    for one in [*new, *present, refused]:
        queue.send(one)
    queue.aws.client("sqs", INTAKE_REGION).send_message(QueueUrl=queue.url, MessageBody="[]")
    for one in present:
        assert poster(shop.url)(one.service_body())[0] == 201
    real = poster(shop.url)
    gauge = threading.Lock()
    in_flight, most = [0], [0]

    def counting(body):  # type: ignore[no-untyped-def]
        with gauge:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            return real(body)
        finally:
            with gauge:
                in_flight[0] -= 1

    outcome = replay(queue, counting)
    assert 2 <= most[0] <= REPLAY_WORKERS
    assert (outcome.created, outcome.present, outcome.stopped) == (6, 2, None)
    assert sorted(aside.order_id or "" for aside in outcome.set_aside) == sorted(["", str(refused.order_id)])
    everything = [o.order_id for o in [*new, *present]]
    assert stored(postgres, shop, everything) == {str(i): 1 for i in everything}
    status = queue.status()
    assert (status.waiting, status.in_flight, status.dead_letters) == (0, 0, 2)


def test_a_service_lost_mid_replay_keeps_every_order_it_did_not_store_queued(queue, shop, postgres) -> None:
    """The service goes away after ten orders: those ten are stored and deleted, the others are put back
    at once (not after the visibility timeout), and a rerun enters them."""
    orders = [order(shop) for _ in range(16)]
    for one in orders:
        queue.send(one)
    real = poster(shop.url)
    answered = threading.Condition()
    posted, done, gone = [0], [0], [False]

    def losing_the_service_after_ten(body):  # type: ignore[no-untyped-def]
        with answered:
            posted[0] += 1
            if posted[0] > 10:
                # The ten earlier posts may still be on their way: the service goes once they have their
                # answers, before any later post reaches it.
                answered.wait_for(lambda: done[0] >= 10)
                if not gone[0]:
                    shop.stop()
                    gone[0] = True
        try:
            return real(body)
        finally:
            with answered:
                done[0] += 1
                answered.notify_all()

    first = replay(queue, losing_the_service_after_ten)
    assert (first.created, first.present) == (10, 0)
    assert first.stopped is not None and "did not answer POST /orders" in first.stopped
    status = queue.status()
    assert (status.waiting, status.in_flight) == (6, 0)
    shop.start()
    assert shop.wait_listening()
    second = replay(queue, poster(shop.url))
    assert (second.created, second.present, second.stopped) == (6, 0, None)
    ids = [o.order_id for o in orders]
    assert stored(postgres, shop, ids) == {str(i): 1 for i in ids}
