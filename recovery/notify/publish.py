"""Tell people: rendered messages to the target's SNS topics, with an outbox that keeps every one.

Every message is appended to `<state_dir>/notifications/outbox.jsonl` with the outcome of its publish
(`sent` with SNS's message id, `failed` with the error's code, `no-topic` when the target names no topic
for that audience). A failed publish never fails the runbook that caused it: the run goes on, the
outbox says what did not reach anyone, and `pending()` lists it for whoever resends (the watch).

`Notifier` is also an engine subscriber: a run that changes the target tells the team when it starts and
how it ended (done, or failed with the command that continues it; a failed rollback pages a person).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from recovery.drivers.aws import AwsDriver
from recovery.engine.events import Event, RunFinished, RunResumed, RunStarted
from recovery.engine.model import utc_now
from recovery.errors import RecoveryError
from recovery.notify.templates import Message, TemplateSet, load_templates
from recovery.targets.model import Target

OUTBOX = Path("notifications") / "outbox.jsonl"
Status = Literal["sent", "failed", "no-topic"]
# Notifications must not hold a runbook up when the topic's endpoint is down: one retry, short timeouts.
PUBLISH_ATTEMPTS = 2


@dataclass(frozen=True)
class Delivery:
    at: str
    event: str
    audience: str
    topic: str | None
    subject: str
    status: Status
    message_id: str | None = None
    error: str | None = None


def topic_region(topic_arn: str) -> str:
    """The region in an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)."""
    parts = topic_arn.split(":")
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "sns"] or not parts[3]:
        raise ValueError(f"{topic_arn!r} is not an SNS topic ARN")
    return parts[3]


class Notifier:
    """Publishes rendered messages to one target's team and customer topics."""

    def __init__(
        self, target: Target, templates: TemplateSet | None = None, driver: AwsDriver | None = None
    ) -> None:
        self.target = target
        # Loaded (and so validated) now: a broken template is refused before any run starts.
        self.templates = templates or load_templates(target.notification_templates)
        self._driver = driver
        self._outbox = target.state_dir / OUTBOX
        self._runs: dict[str, RunStarted | RunResumed] = {}
        self._write_lock = threading.Lock()

    def _topic(self, message: Message) -> str | None:
        return self.target.team_topic_arn if message.audience == "team" else self.target.customer_topic_arn

    def _aws(self) -> AwsDriver:
        if self._driver is None:
            self._driver = AwsDriver(
                self.target.aws, attempts=PUBLISH_ATTEMPTS, connect_timeout=2, read_timeout=10
            )
        return self._driver

    def send(self, event: str, fields: Mapping[str, object], attributes: Mapping[str, str] = {}) -> Delivery:
        """Render `event` with `fields`, publish it, record the outcome. Never raises for AWS trouble."""
        message = self.templates.render(event, fields)
        topic = self._topic(message)
        status: Status = "no-topic"
        message_id = error = None
        if topic is not None:
            try:
                message_id = self._publish(topic, message, attributes)
                status = "sent"
            except RecoveryError as exc:
                status, error = "failed", exc.code
        delivery = Delivery(
            utc_now(), event, message.audience, topic, message.subject, status, message_id, error
        )
        self._record(delivery, message.body)
        return delivery

    def _publish(self, topic: str, message: Message, attributes: Mapping[str, str]) -> str:
        aws = self._aws()
        sns = aws.client("sns", topic_region(topic))
        values = {"event": message.event, **attributes}
        with aws.translate("publish a notification", f"SNS topic {topic}"):
            answer = sns.publish(
                TopicArn=topic,
                Subject=message.subject,
                Message=message.body,
                MessageAttributes={
                    name: {"DataType": "String", "StringValue": value}
                    for name, value in values.items()
                    if value
                },
            )
        return str(answer["MessageId"])

    def _record(self, delivery: Delivery, body: str) -> None:
        line = json.dumps({**asdict(delivery), "body": body}, sort_keys=True) + "\n"
        with self._write_lock:
            self._outbox.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._outbox, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    # The engine subscriber -----------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            if not event.mutating:
                return  # reads (list, verify) change nothing: nobody needs to hear of them
            self._runs[event.run_id] = event
            self.send("team/run-started", run_started_fields(event), {"run_id": event.run_id})
        elif isinstance(event, RunResumed):
            self._runs[event.run_id] = event
        elif isinstance(event, RunFinished) and event.run_id in self._runs:
            started = self._runs.pop(event.run_id)
            kind, fields = outcome_message(started, event)
            self.send(kind, fields, {"run_id": event.run_id})


def run_started_fields(event: RunStarted) -> dict[str, object]:
    return {
        "target": event.target,
        "runbook": event.runbook,
        "run_id": event.run_id,
        "at": event.at,
        "user": event.user,
        "host": event.host,
        "steps": " -> ".join(step.name for step in event.steps),
    }


def outcome_message(started: RunStarted | RunResumed, finished: RunFinished) -> tuple[str, dict[str, object]]:
    """Which team message a finished run deserves, and its fields. Pure.

    A failed rollback is a page: the system may be half-way between two releases and only a person can
    decide. Any other failure says where it stopped and how to continue."""
    base: dict[str, object] = {
        "target": started.target,
        "runbook": started.runbook,
        "run_id": finished.run_id,
        "at": finished.at,
    }
    if finished.status == "ok":
        return "team/run-succeeded", {**base, "duration_s": f"{finished.duration_s:.1f}"}
    message = finished.message or "no message"
    if started.runbook == "rollback":
        action = (
            f"the rollback stopped at {finished.failed_step}: check the service and the database, then "
            f"continue it with `recovery runs resume {finished.run_id} --target {started.target}`"
        )
        return "team/page-a-human", {**base, "message": f"the rollback failed: {message}", "action": action}
    return "team/run-failed", {
        **base,
        "failed_step": finished.failed_step or "-",
        "message": message,
        "code": finished.code or "-",
        "duration_s": f"{finished.duration_s:.1f}",
    }


def read_outbox(target: Target) -> list[dict[str, Any]]:
    """Every message recorded for this target, oldest first (a torn last line is skipped)."""
    path = target.state_dir / OUTBOX
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def pending(target: Target) -> list[dict[str, Any]]:
    """The messages whose publish failed, for a person or the watch to resend."""
    return [record for record in read_outbox(target) if record.get("status") == "failed"]
