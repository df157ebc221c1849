"""The intake queue (SQS) and its dead-letter queue, through the one AWS driver.

A message is deleted only after the order service has the order (created, or already there from an
earlier attempt): a crash between the two makes SQS deliver it again, and the service's idempotency on
the order id turns that into a no-op. A poison message is copied to the dead-letter queue with its
reason before it is deleted, so nothing leaves the main queue without being recorded somewhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recovery.drivers.aws import AwsDriver
from recovery.errors import UsageError
from recovery.intake.record import IntakeOrder, PoisonMessage, from_message

# Long enough for one replay batch to reach the service; a crashed replay's messages come back after it.
VISIBILITY_SECONDS = 30
BATCH = 10  # SQS's most messages per receive and entries per batch call


@dataclass(frozen=True)
class Received:
    receipt: str
    body: str
    receive_count: int
    order: IntakeOrder | None  # None: poison, see `poison`
    poison: str | None = None


@dataclass(frozen=True)
class QueueStatus:
    waiting: int
    in_flight: int
    dead_letters: int


def queue_region(queue_url: str) -> str:
    """The region of an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<name>); a local
    endpoint (the lab's moto) carries none, so the caller's default applies."""
    host = queue_url.split("/")[2] if "://" in queue_url else ""
    parts = host.split(".")
    if len(parts) >= 3 and parts[0] == "sqs":
        return parts[1]
    return ""


class IntakeQueue:
    def __init__(self, aws: AwsDriver, queue_url: str, region: str) -> None:
        self.aws = aws
        self.url = queue_url
        self.region = queue_region(queue_url) or region
        self._dlq_url: str | None = None

    def _sqs(self) -> Any:
        return self.aws.client("sqs", self.region)

    def send(self, order: IntakeOrder) -> str:
        with self.aws.translate("queue an order", f"intake queue {self.url}"):
            answer = self._sqs().send_message(
                QueueUrl=self.url,
                MessageBody=order.to_message(),
                MessageAttributes={"order_id": {"DataType": "String", "StringValue": str(order.order_id)}},
            )
        return str(answer["MessageId"])

    def receive(self, limit: int = 10, wait_seconds: int = 0) -> list[Received]:
        with self.aws.translate("read the intake queue", f"intake queue {self.url}"):
            answer = self._sqs().receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max(1, min(limit, 10)),
                WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=VISIBILITY_SECONDS,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        found = []
        for message in answer.get("Messages", []):
            count = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            body = str(message["Body"])
            try:
                found.append(Received(message["ReceiptHandle"], body, count, from_message(body)))
            except PoisonMessage as exc:
                found.append(Received(message["ReceiptHandle"], body, count, None, str(exc)))
        return found

    def delete(self, received: Received) -> None:
        with self.aws.translate("remove a replayed order", f"intake queue {self.url}"):
            self._sqs().delete_message(QueueUrl=self.url, ReceiptHandle=received.receipt)

    def delete_all(self, messages: Sequence[Received]) -> None:
        """Delete replayed messages, up to ten per call. An entry SQS refuses is deleted on its own once
        more; should that fail too, the message comes back and its order is found already there."""
        for start in range(0, len(messages), BATCH):
            chunk = messages[start : start + BATCH]
            with self.aws.translate("remove replayed orders", f"intake queue {self.url}"):
                answer = self._sqs().delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[{"Id": str(n), "ReceiptHandle": m.receipt} for n, m in enumerate(chunk)],
                )
            for failed in answer.get("Failed", []):
                self.delete(chunk[int(failed["Id"])])

    def release(self, messages: Sequence[Received]) -> None:
        """Make received messages visible again at once: the replay stopped before reaching them."""
        if not messages:
            return
        with self.aws.translate("put orders back", f"intake queue {self.url}"):
            self._sqs().change_message_visibility_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m.receipt, "VisibilityTimeout": 0}
                    for n, m in enumerate(messages)
                ],
            )

    def dead_letter(self, received: Received, reason: str) -> None:
        """Record the message with its reason in the dead-letter queue, then take it off the main one."""
        document = json.dumps({"reason": reason, "body": received.body}, sort_keys=True)
        with self.aws.translate("set an order aside", f"dead-letter queue of {self.url}"):
            self._sqs().send_message(
                QueueUrl=self.dead_letter_url(),
                MessageBody=document,
                MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:256]}},
            )
        self.delete(received)

    def dead_letter_url(self) -> str:
        """The dead-letter queue named by the main queue's redrive policy (the stacks and the lab set it)."""
        if self._dlq_url is None:
            with self.aws.translate("read the redrive policy", f"intake queue {self.url}"):
                sqs = self._sqs()
                attributes = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["RedrivePolicy"])
                policy = attributes.get("Attributes", {}).get("RedrivePolicy")
                if not policy:
                    raise UsageError(
                        f"the intake queue {self.url} has no dead-letter queue; give it a redrive policy",
                        code="intake.no_dlq",
                    )
                name = str(json.loads(policy)["deadLetterTargetArn"]).split(":")[-1]
                self._dlq_url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
        return self._dlq_url

    def status(self) -> QueueStatus:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        with self.aws.translate("read the intake queue's depth", f"intake queue {self.url}"):
            sqs = self._sqs()
            main = sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
            dead = sqs.get_queue_attributes(QueueUrl=self.dead_letter_url(), AttributeNames=names)[
                "Attributes"
            ]
        return QueueStatus(
            int(main.get(names[0], 0)),
            int(main.get(names[1], 0)),
            int(dead.get(names[0], 0)) + int(dead.get(names[1], 0)),
        )
