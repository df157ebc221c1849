""" "Received, pending" from the real order service on PostgreSQL, for each order it queues while its
database is fenced: read back from an SQS queue subscribed to the customer topic on moto's server, with
the right order ids, once per order id (a client retrying the same order is not told twice), rendered
from the toolkit's own template; a topic that does not answer costs the order nothing."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import INTAKE_REGION, MotoIntake, open_shop

from recovery.notify.templates import PENDING_EVENT, load_templates


@pytest.fixture
def customer_topic(moto_intake: MotoIntake) -> Iterator[tuple[str, Callable[[float], list[dict[str, Any]]]]]:
    """(topic ARN, read(wait_s) -> the SNS envelopes delivered to an SQS queue subscribed to it)."""
    import boto3

    endpoint = moto_intake.endpoint_url
    sns = boto3.client("sns", region_name=INTAKE_REGION, endpoint_url=endpoint)
    sqs = boto3.client("sqs", region_name=INTAKE_REGION, endpoint_url=endpoint)
    name = f"customers-{uuid.uuid4().hex[:8]}"
    topic = sns.create_topic(Name=name)["TopicArn"]
    inbox = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)

    def read(wait_s: float) -> list[dict[str, Any]]:
        """Every message delivered within wait_s seconds (the service publishes from its own thread)."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            answer = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            for message in answer.get("Messages", []):
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=inbox, ReceiptHandle=message["ReceiptHandle"])
        return found

    yield topic, read
    sns.delete_topic(TopicArn=topic)


@pytest.fixture
def shop(postgres, deploy, moto_intake: MotoIntake):  # type: ignore[no-untyped-def]
    """make(topic_arn) -> a v1 service in degraded mode whose pending notice goes to topic_arn."""
    made = []

    def make(topic_arn: str):  # type: ignore[no-untyped-def]
        subject, body = load_templates().source_text(PENDING_EVENT)
        intake = moto_intake.service_config()
        intake["pending_notice"] = {"topic_arn": topic_arn, "subject": subject, "body": body}
        made.append(open_shop(postgres, deploy, "pending", intake))
        return made[-1]

    yield make
    for run in made:
        run.stop()
        postgres.drop_database(run.db)


@pytest.fixture
def fenced(postgres) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The service's role kept out of its database (what a rollback's fence does), lifted after."""
    postgres.execute("postgres", "ALTER ROLE orders NOLOGIN")
    postgres.execute(
        "postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'orders'"
    )
    try:
        yield
    finally:
        postgres.execute("postgres", "ALTER ROLE orders LOGIN")


def order_body(run: Any) -> dict[str, Any]:
    return {
        "order_id": str(uuid.uuid4()),
        "user_id": run.user_id,
        "items": [{"product_id": run.product_id, "quantity": 1}],
    }


def test_each_queued_order_is_told_received_pending_once(shop, customer_topic, request) -> None:  # type: ignore[no-untyped-def]
    topic, read = customer_topic
    run = shop(topic)
    request.getfixturevalue("fenced")
    bodies = [order_body(run) for _ in range(3)]
    answers = [run.call("POST", "/orders", body) for body in bodies]
    assert [status for status, _ in answers] == [202, 202, 202]
    # The client did not get its answer and sends the same order again: queued again, not told again.
    assert run.call("POST", "/orders", bodies[0])[0] == 202
    messages = read(8)
    told = sorted(m["Subject"].removeprefix("We received your order ") for m in messages)
    assert told == sorted(body["order_id"] for body in bodies)
    received_at = {answer["order_id"]: answer["received_at"] for _, answer in answers}
    for message in messages:
        order_id = message["Subject"].removeprefix("We received your order ")
        assert message["Message"].startswith(f"We received your order {order_id} at {received_at[order_id]}.")
        assert message["MessageAttributes"]["event"]["Value"] == PENDING_EVENT


def test_a_topic_that_does_not_exist_costs_the_order_nothing(shop, customer_topic, request) -> None:  # type: ignore[no-untyped-def]
    _, read = customer_topic
    run = shop(f"arn:aws:sns:{INTAKE_REGION}:123456789012:no-such-topic")
    request.getfixturevalue("fenced")
    status, answer = run.call("POST", "/orders", order_body(run))
    assert status == 202 and answer["status"] == "pending"
    assert read(2) == []
    deadline = time.monotonic() + 10
    while "no 'received, pending' message" not in run.log_file.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"no 'received, pending' message for order {answer['order_id']}: " in run.log_file.read_text()


@pytest.mark.parametrize(
    ("notice", "said"),
    [
        (
            {"topic_arn": "customers", "subject": "s", "body": "b"},
            "'topic_arn' 'customers' is not an SNS topic ARN",
        ),
        (
            {"topic_arn": f"arn:aws:sns:{INTAKE_REGION}:1:c", "subject": " ", "body": "b"},
            "'subject' and 'body' must not be empty; deploy the template's text",
        ),
        ("yes", "'pending_notice' must be an object with topic_arn, subject and body"),
    ],
)
def test_a_wrong_pending_notice_in_the_config_is_one_line_and_exit_2(
    postgres, deploy, moto_intake, notice, said
) -> None:  # type: ignore[no-untyped-def]
    intake = {**moto_intake.service_config(), "pending_notice": notice}
    run = deploy("v1", "postgres", intake=intake)
    answer = run.command("status", "--config", str(run.config))
    assert answer.returncode == 2
    assert answer.stderr.strip().splitlines()[-1].endswith(said)
    assert len(answer.stderr.strip().splitlines()) == 1
