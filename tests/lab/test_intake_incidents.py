"""Degraded mode on the real lab, under load: while a rollback of a faulty release or a restore keeps the
order service out of its database, orders are accepted as pending into the intake queue (moto's SQS),
the runbook's last step replays them exactly once, the ledger shows none lost and none duplicated, and
the customers hear "received, pending" from the service once per queued order and "confirmed" after the
replay through the customer topic (read back through an SQS subscription).

One small lab for the module (300 seeded orders). Run with your own base port:
RECOVERY_TEST_BASE_PORT=21000 .venv/bin/pytest tests/lab/test_intake_incidents.py
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import BASE_PORT, Lab, running_lab

from recovery.cli.main import main
from recovery.drivers.aws import AwsDriver
from recovery.errors import ExitCode
from recovery.intake.book import intake_queue
from recovery.load.generator import LoadGenerator, LoadSettings
from recovery.load.ledger import read_ledger
from recovery.load.ledger_check import verify_ledger
from recovery.runbooks.rollback import upgrade_with_rollback
from recovery.runbooks.upgrade import upgrade_params
from recovery.targets.model import Target

pytestmark = pytest.mark.lab

RATE = 20.0
CONFIRMED = re.compile(r"Your order ([0-9a-f-]{36}) is confirmed")
PENDING = re.compile(r"We received your order ([0-9a-f-]{36})")


@pytest.fixture(scope="module")
def lab(lab_reachable_tmp: Callable[[str], Path]) -> Iterator[Lab]:
    with running_lab(lab_reachable_tmp("intake-lab"), BASE_PORT, "--orders", "300") as built:
        yield built


@pytest.fixture(autouse=True)
def lab_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "lab")  # moto takes any credentials


@pytest.fixture
def customer_inbox(lab: Lab) -> Callable[[], dict[str, list[str]]]:
    """An SQS queue subscribed to the customer topic; read() -> the order ids of the "confirmed" and the
    "pending" messages."""
    target = lab.target
    aws = AwsDriver(target.aws)
    sqs, sns = aws.client("sqs", target.primary.region), aws.client("sns", target.primary.region)
    url = sqs.create_queue(QueueName=f"customer-inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=target.customer_topic_arn, Protocol="sqs", Endpoint=arn)

    def read() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {"confirmed": [], "pending": []}
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                subject = json.loads(message["Body"]).get("Subject", "")
                for kind, pattern in (("confirmed", CONFIRMED), ("pending", PENDING)):
                    if match := pattern.fullmatch(subject):
                        found[kind].append(match.group(1))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    read()  # start empty
    return read


def under_load(target: Target, ledger: Path, incident: Callable[[], Any]) -> Any:
    generator = LoadGenerator(LoadSettings(target.traffic.front_door_url, rate=RATE, seed=7), ledger)
    generator.start()
    try:
        return incident()
    finally:
        generator.stop()


def step_output(run: Any, name: str) -> dict[str, Any]:
    return dict(run.step(name).output or {})


def check_pending_replayed(
    target: Target, ledger_path: Path, replay: dict[str, Any], told: dict[str, list[str]]
) -> None:
    ledger = read_ledger(ledger_path)
    pending = {order.order_id for order in ledger.pending}
    assert pending, "no order was accepted as pending during the incident"
    # No order was refused for want of a database: what is left are the restarts (no answer at all).
    refused_by_the_database = [f for f in ledger.failures if f.op == "order" and f.http_status == 503]
    assert refused_by_the_database == []
    verdict = verify_ledger(target, ledger)
    assert verdict.passed, verdict.summary()
    assert (verdict.pending, verdict.pending_present) == (len(pending), len(pending))
    assert verdict.duplicated.count == 0 and verdict.lost.count == 0
    assert replay["stopped"] is None and replay["set_aside"] == []
    # Every queued message became its order once ("present": its write had committed as the fence cut
    # the session, so the database had it already).
    # An order the service queued whose 202 never reached the client (a restart, the client's timeout)
    # is replayed too: the client counted that request as failed with no answer, never as refused.
    entered = replay["created"] + replay["already_present"]
    unanswered = [f for f in ledger.failures if f.op == "order" and f.http_status is None]
    assert len(pending) <= entered <= len(pending) + len(unanswered)
    assert intake_queue(target).status().waiting == 0
    assert sorted(told["confirmed"]) == sorted(pending)
    # "Received, pending" from the service: once per queued order, the unanswered ones included.
    assert len(told["pending"]) == len(set(told["pending"]))
    assert pending <= set(told["pending"])
    assert len(told["pending"]) <= len(pending) + len(unanswered)


def test_a_rollback_under_load_takes_orders_as_pending_and_replays_them_once(
    lab: Lab, tmp_path: Path, customer_inbox: Callable[[], dict[str, list[str]]]
) -> None:
    target = lab.target
    params = upgrade_params("v2-unhealthy", watch_seconds=3, health_timeout=8)
    ledger = tmp_path / "rollback.jsonl"
    outcome = under_load(target, ledger, lambda: upgrade_with_rollback(target, params, auto_rollback=True))
    assert outcome.status == "rolled_back", outcome.reason
    assert outcome.rollback is not None
    fence = step_output(outcome.rollback, "fence")
    assert fence.get("role"), fence  # the service was fenced, not stopped: it kept answering
    check_pending_replayed(target, ledger, step_output(outcome.rollback, "replay-intake"), customer_inbox())


def test_a_restore_under_load_takes_orders_as_pending_during_its_swap(
    lab: Lab,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    customer_inbox: Callable[[], dict[str, list[str]]],
) -> None:
    target = lab.target
    where = ["-t", str(lab.dir / "target.yaml"), "-o", "json"]
    ledger = tmp_path / "restore.jsonl"

    def backup_then_restore() -> dict[str, Any]:
        # The load's user exists before the backup of the users domain, which is restored beside live.
        assert main(["backup", "run", "-d", "users", *where]) == ExitCode.OK
        capsys.readouterr()
        code = main(["restore", "--domains", "users", "--yes", *where])
        document: dict[str, Any] = json.loads(capsys.readouterr().out)
        assert code == ExitCode.OK, document
        return document

    document = under_load(target, ledger, backup_then_restore)
    steps = {step["name"]: step["output"] for step in document["result"]["steps"]}
    assert steps["fence-service"]["role"] and steps["fence-service"]["stopped"] == []
    check_pending_replayed(target, ledger, steps["replay-intake"], customer_inbox())
