"""Publishing to SNS (moto in process): messages reach a subscribed queue, runs tell the team how they
went, and a topic that cannot be reached never fails the run but stays in the outbox."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
from moto import mock_aws

from recovery.drivers.aws import AwsDriver
from recovery.engine import Engine, Runbook, RunContext, Step
from recovery.engine.events import RunFinished, RunStarted
from recovery.errors import ExternalFailure, RecoveryError
from recovery.notify import Notifier, pending, read_outbox
from recovery.notify.publish import outcome_message, topic_region
from recovery.targets import Target

REGION = "eu-west-1"


@pytest.fixture
def sns_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A team and a customer topic, each with an SQS queue subscribed (raw delivery off: SNS envelope)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        aws = AwsDriver()
        sns, sqs = aws.client("sns", REGION), aws.client("sqs", REGION)
        world: dict[str, str] = {}
        for audience in ("team", "customer"):
            topic = sns.create_topic(Name=f"shop-{audience}")["TopicArn"]
            queue = sqs.create_queue(QueueName=f"{audience}-inbox")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
            world[f"{audience}_topic_arn"] = topic
            world[f"{audience}_queue"] = queue
        yield world


def received(queue_url: str) -> list[dict[str, Any]]:
    sqs = AwsDriver().client("sqs", REGION)
    found: list[dict[str, Any]] = []
    while True:
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        batch = answer.get("Messages", [])
        if not batch:
            return found
        for message in batch:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def two_steps(fail: bool) -> Runbook:
    def change(ctx: RunContext) -> Mapping[str, Any]:
        if fail:
            raise ExternalFailure("the host did not answer; check it and resume")
        return {"changed": True}

    return Runbook(
        name="notify-sample",
        steps=(
            Step("look", "look at the target", lambda ctx: None, mutating=False),
            Step("change", "change the target", change),
        ),
    )


def test_a_message_reaches_the_team_topics_subscribers(
    sns_world: dict[str, str], make_target: Callable[..., Target]
) -> None:
    target = make_target(team_topic_arn=sns_world["team_topic_arn"])
    fields = {
        "target": "shop",
        "check": "backup age orders/realtime",
        "observed": "310 s",
        "threshold": "120 s",
        "action": "paged the team",
        "command": "recovery backup ship --target shop",
        "at": "2026-12-06T20:00:00Z",
    }
    delivery = Notifier(target).send("team/alarm", fields)
    assert delivery.status == "sent" and delivery.message_id
    [envelope] = received(sns_world["team_queue"])
    assert envelope["Subject"] == "[shop] ALARM backup age orders/realtime"
    assert "recovery backup ship --target shop" in envelope["Message"]
    assert envelope["MessageAttributes"]["event"]["Value"] == "team/alarm"
    assert received(sns_world["customer_queue"]) == []


def test_a_run_tells_the_team_it_started_and_that_it_is_done(
    sns_world: dict[str, str], make_target: Callable[..., Target]
) -> None:
    target = make_target(team_topic_arn=sns_world["team_topic_arn"])
    result = Engine(target, [Notifier(target)]).run(two_steps(fail=False))
    subjects = [m["Subject"] for m in received(sns_world["team_queue"])]
    assert subjects == [
        f"[shop] notify-sample started (run {result.run_id})",
        f"[shop] notify-sample done (run {result.run_id})",
    ]
    assert [r["status"] for r in read_outbox(target)] == ["sent", "sent"]


def test_a_failed_run_says_where_it_stopped_and_how_to_continue(
    sns_world: dict[str, str], make_target: Callable[..., Target]
) -> None:
    target = make_target(team_topic_arn=sns_world["team_topic_arn"])
    with pytest.raises(RecoveryError):
        Engine(target, [Notifier(target)]).run(two_steps(fail=True))
    started, failed = received(sns_world["team_queue"])
    run_id = started["MessageAttributes"]["run_id"]["Value"]
    assert failed["Subject"] == f"[shop] notify-sample FAILED at change (run {run_id})"
    assert "the host did not answer" in failed["Message"]
    assert f"recovery runs resume {run_id} --target shop" in failed["Message"]


def test_an_unreachable_topic_never_fails_the_run_and_stays_pending(
    make_target: Callable[..., Target], free_port: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    closed = free_port()  # nothing listens there: the connection is refused at once
    target = make_target(
        team_topic_arn=f"arn:aws:sns:{REGION}:123456789012:shop-team",
        aws={"endpoint_url": f"http://127.0.0.1:{closed}"},
    )
    result = Engine(target, [Notifier(target)]).run(two_steps(fail=False))
    assert result.status == "ok"
    assert [(p["event"], p["error"]) for p in pending(target)] == [
        ("team/run-started", "external.failed"),
        ("team/run-succeeded", "external.failed"),
    ]


def test_no_topic_means_recorded_but_not_sent(make_target: Callable[..., Target]) -> None:
    target = make_target()
    delivery = Notifier(target).send("customer/order-pending", {"order_id": "o-1", "received_at": "12:00"})
    assert delivery.status == "no-topic"
    assert read_outbox(target)[0]["subject"] == "We received your order o-1"


def test_read_only_runs_are_not_announced(
    sns_world: dict[str, str], make_target: Callable[..., Target]
) -> None:
    target = make_target(team_topic_arn=sns_world["team_topic_arn"])
    look = Runbook(name="notify-look", steps=(Step("look", "look", lambda ctx: None, mutating=False),))
    Engine(target, [Notifier(target)]).run(look)
    assert received(sns_world["team_queue"]) == []


def test_a_failed_rollback_pages_a_person() -> None:
    started = RunStarted("r1", "t0", "rollback", "m", "shop", {}, (), True, "u", "h", 1)
    finished = RunFinished(
        "r1", "t1", "failed", 3.0, failed_step="switch", code="x", message="health never came"
    )
    kind, fields = outcome_message(started, finished)
    assert kind == "team/page-a-human"
    assert "recovery runs resume r1 --target shop" in str(fields["action"])
    assert fields["message"] == "the rollback failed: health never came"


def test_topic_region_reads_the_arn() -> None:
    assert topic_region("arn:aws:sns:eu-central-1:123456789012:t") == "eu-central-1"
    with pytest.raises(ValueError, match="not an SNS topic ARN"):
        topic_region("arn:aws:sqs:eu-west-1:1:q")
