"""The last step of rollback and restore: replay the intake queue (moto's SQS in process). It does nothing
without a queue or with an empty one, and never fails the incident's runbook: what it could not replay
stays queued, noted with the command that continues it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from moto_helpers import create_intake_queue
from target_files import unit_target_doc

from recovery.engine.events import Event, StepNote
from recovery.engine.model import RunContext, StepOutputs
from recovery.intake.book import intake_queue
from recovery.intake.record import IntakeItem, IntakeOrder
from recovery.runbooks.replay_intake import STEP, replay_intake
from recovery.runbooks.restore import restore_runbook
from recovery.runbooks.rollback import rollback_runbook
from recovery.targets.model import Target

REGION = "us-east-1"


@pytest.fixture
def queue_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        import boto3

        yield create_intake_queue(boto3.client("sqs", region_name=REGION))[0]


def make_target(tmp_path: Path, queue_url: str | None) -> Target:
    doc = unit_target_doc(tmp_path)
    if queue_url:
        doc["intake_queue_url"] = queue_url
    return Target.model_validate(doc)


def web_order() -> IntakeOrder:
    return IntakeOrder(
        order_id=uuid.uuid4(),
        user_id=1,
        items=(IntakeItem(product_id=1, quantity=1),),
        received_at=datetime.now(UTC),
        channel="web",
    )


def run_step(target: Target, events: list[Event]) -> dict[str, object]:
    context = RunContext(target, "run-1", "rollback", STEP, {}, StepOutputs({}), events.append)
    return replay_intake(context)


def test_both_incident_runbooks_end_with_the_replay(tmp_path: Path) -> None:
    target = make_target(tmp_path, None)
    restore = restore_runbook(target, {"domains": ["users"], "restore_id": "r1", "at": None, "point": None})
    rollback = rollback_runbook(target, {"upgrade_run": "", "to": "", "health_timeout": 30})
    assert restore.steps[-1].name == rollback.steps[-1].name == STEP


def test_without_a_queue_or_with_an_empty_one_nothing_happens(tmp_path: Path, queue_url: str) -> None:
    events: list[Event] = []
    assert run_step(make_target(tmp_path, None), events) == {"skipped": "the target names no intake queue"}
    assert run_step(make_target(tmp_path, queue_url), events) == {"skipped": "the intake queue is empty"}


def test_orders_the_service_cannot_take_yet_stay_queued_and_the_run_goes_on(
    tmp_path: Path, queue_url: str
) -> None:
    target = make_target(tmp_path, queue_url)  # its front door: nothing listens there
    queue = intake_queue(target)
    for _ in range(3):
        queue.send(web_order())
    events: list[Event] = []
    output = run_step(target, events)
    assert output["created"] == 0 and str(output["stopped"]).startswith("the order service at")
    assert queue.status().waiting == 3  # put back at once
    notes = [event.message for event in events if isinstance(event, StepNote)]
    assert any("run `recovery intake replay` to enter the rest" in note for note in notes)


def test_a_queue_that_does_not_answer_is_noted_not_raised(tmp_path: Path, queue_url: str) -> None:
    target = make_target(tmp_path, queue_url.replace("/intake", "/gone"))
    events: list[Event] = []
    output = run_step(target, events)
    assert output["replayed"] == 0 and output["code"]
    assert any(isinstance(event, StepNote) and "was not replayed" in event.message for event in events)


def test_a_local_queue_is_found_in_the_primary_sites_region_after_a_failover(
    tmp_path: Path, queue_url: str
) -> None:
    import boto3

    # A local endpoint's queue URL (the lab's) names no region; the queue was made in the primary site's.
    target = make_target(tmp_path, None)
    assert target.primary.region != target.standby.region
    made = create_intake_queue(boto3.client("sqs", region_name=target.primary.region), "lab-intake")[0]
    local_url = "http://127.0.0.1:1/" + made.split("/", 3)[3]
    target = make_target(tmp_path, local_url).model_copy(update={"writer": "standby"})
    queue = intake_queue(target)
    queue.send(web_order())
    assert queue.status().waiting == 1
