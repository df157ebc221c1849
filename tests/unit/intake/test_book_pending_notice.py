"""What a deploy hands the order service for "received, pending": the target's customer topic and its
`customer/order-pending` template as the toolkit checked it (a team's own file when it has one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from target_files import unit_target_doc

from recovery.errors import ConfigError
from recovery.intake.book import pending_notice_vars
from recovery.targets.model import Target

TOPIC = "arn:aws:sns:eu-central-1:123456789012:order-customers"


def target(tmp_path: Path, **extra: object) -> Target:
    doc = unit_target_doc(tmp_path)
    doc.update(extra)
    return Target.model_validate(doc)


def test_a_target_with_a_queue_and_a_customer_topic_hands_over_the_default_template(tmp_path: Path) -> None:
    found = pending_notice_vars(
        target(tmp_path, intake_queue_url="http://q/intake", customer_topic_arn=TOPIC)
    )
    assert found["order_service_customer_topic_arn"] == TOPIC
    assert found["order_service_pending_subject"] == "We received your order ${order_id}"
    assert found["order_service_pending_body"].startswith(
        "We received your order ${order_id} at ${received_at}."
    )


def test_without_a_queue_or_a_topic_the_service_tells_nothing_itself(tmp_path: Path) -> None:
    assert pending_notice_vars(target(tmp_path, customer_topic_arn=TOPIC)) == {}
    assert pending_notice_vars(target(tmp_path, intake_queue_url="http://q/intake")) == {}


def test_a_teams_own_template_is_handed_over_and_a_broken_one_refused(tmp_path: Path) -> None:
    own = tmp_path / "templates"
    (own / "customer").mkdir(parents=True)
    (own / "customer" / "order-pending.txt").write_text(
        "subject: Got ${order_id}\n---\nHello, ${received_at}\n"
    )
    extra = {
        "intake_queue_url": "http://q/intake",
        "customer_topic_arn": TOPIC,
        "notification_templates": own,
    }
    found = pending_notice_vars(target(tmp_path, **extra))
    assert (found["order_service_pending_subject"], found["order_service_pending_body"]) == (
        "Got ${order_id}",
        "Hello, ${received_at}",
    )
    (own / "customer" / "order-pending.txt").write_text("subject: Got ${order_id}\n---\nYour card ${card}\n")
    with pytest.raises(ConfigError, match=r"order-pending.txt:3: unknown field \$\{card\}"):
        pending_notice_vars(target(tmp_path, **extra))
