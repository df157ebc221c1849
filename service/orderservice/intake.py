"""Degraded mode: an order the database cannot take now goes durably into the SQS intake queue.

The message is the toolkit's queued-order record, format 1 (docs/intake.md, "The queued order"), which
`recovery intake replay` reads and posts back to POST /orders under the same order id once the database
takes writes again. The service never imports the toolkit: the format is written out here and checked from
both sides by the tests (a message this module builds must parse as the toolkit's record; the toolkit's
contract test pins the same fields):

    {"format": 1, "order_id": "<uuid>", "user_id": <int>, "items": [{"product_id": <int>,
     "quantity": <int 1..10000>}, ...], "received_at": "<ISO 8601 with offset>", "channel": "web",
     "reference": null}

Only what POST /orders needs travels: no name, address or payment detail.

boto3 is imported only when a queue is configured: a host without degraded mode needs nothing more than
psycopg2. On the hosts it is the distribution's package (python3-boto3), for the system interpreter.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import urllib.parse
from datetime import datetime, timezone
from typing import Any

from orderservice.config import IntakeConfig
from orderservice.errors import ApiError

log = logging.getLogger("orderservice.intake")

FORMAT = 1
# timezone.utc, not datetime.UTC (3.11+): the service runs on the hosts' Python, which may be 3.9.
UTC_ZONE = timezone.utc  # noqa: UP017
CHANNEL = "web"
# The queued record's own bounds (the replay refuses anything outside them as poison): an order the
# queue could carry but never replay is refused now rather than acknowledged.
MAX_QUEUED_QUANTITY = 10_000
MAX_QUEUED_LINES = 50
# A loopback endpoint (the lab's moto server) accepts any credentials: fixed, non-secret ones.
LOCAL_ENDPOINT_CREDENTIALS = {"aws_access_key_id": "lab", "aws_secret_access_key": "lab"}


class QueueUnavailable(ApiError):
    """Neither the database nor the intake queue took the order: nothing was acknowledged."""

    status = 503
    code = "intake_unavailable"


class NotQueueable(ApiError):
    """The order is valid for the database but outside what the intake queue's record carries."""

    status = 503
    code = "unavailable"


def message_for(
    order_id: str, user_id: int, lines: tuple[tuple[int, int], ...], received_at: datetime
) -> str:
    """The queued-order record (format 1) for an order POST /orders validated. Pure."""
    if len(lines) > MAX_QUEUED_LINES or any(quantity > MAX_QUEUED_QUANTITY for _, quantity in lines):
        raise NotQueueable(
            "the database cannot take writes and this order is larger than degraded mode takes "
            f"(at most {MAX_QUEUED_LINES} lines of at most {MAX_QUEUED_QUANTITY}); retry later"
        )
    if received_at.tzinfo is None:
        raise ValueError("received_at must carry its time zone")
    return json.dumps(
        {
            "format": FORMAT,
            "order_id": order_id,
            "user_id": user_id,
            "items": [{"product_id": product, "quantity": quantity} for product, quantity in lines],
            "received_at": received_at.astimezone(UTC_ZONE).isoformat(),
            "channel": CHANNEL,
            "reference": None,
        },
        separators=(",", ":"),
    )


def _is_loopback(endpoint_url: str | None) -> bool:
    host = urllib.parse.urlsplit(endpoint_url or "").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def aws_client(service: str, region: str, endpoint_url: str | None) -> Any:
    """A boto3 client for the intake's AWS calls (SQS, and SNS for customer messages)."""
    import boto3
    from botocore.config import Config

    extra = LOCAL_ENDPOINT_CREDENTIALS if _is_loopback(endpoint_url) else {}
    # Short timeouts and few attempts: the client waits on this answer, and an unreachable
    # queue must become a clear refusal within seconds, not a hung request.
    return boto3.session.Session().client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(
            connect_timeout=2,
            read_timeout=5,
            retries={"total_max_attempts": 2, "mode": "standard"},
        ),
        **extra,
    )


class IntakeQueue:
    """Sends queued orders to SQS; one client, made on first use and shared by the request threads."""

    def __init__(self, config: IntakeConfig) -> None:
        self.config = config
        self._client: Any = None
        self._lock = threading.Lock()

    def _sqs(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = aws_client("sqs", self.config.region, self.config.endpoint_url)
            return self._client

    def prepare(self) -> str | None:
        """Build the client now (no network call), so the first order of an incident does not pay for it
        and a host without boto3 says so at start; the problem in words, or None."""
        try:
            self._sqs()
        except ImportError:
            return "degraded mode is configured but boto3 is missing; install python3-boto3"
        return None

    def send(self, order_id: str, body: str) -> str:
        """Put the message on the queue; its message id once SQS has stored it, else QueueUnavailable."""
        try:
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:
            log.error("degraded mode is configured but boto3 is missing; install python3-boto3")
            raise QueueUnavailable(
                "the order was not taken: the database cannot take writes and the intake queue is not "
                "usable on this host; retry later"
            ) from None
        try:
            answer = self._sqs().send_message(
                QueueUrl=self.config.queue_url,
                MessageBody=body,
                MessageAttributes={"order_id": {"DataType": "String", "StringValue": order_id}},
            )
        except (BotoCoreError, ClientError) as exc:
            # The error's class and code only: never the request, the URL's credentials or the body.
            code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
            log.warning("intake queue refused order %s: %s %s", order_id, type(exc).__name__, code)
            raise QueueUnavailable(
                "the order was not taken: the database cannot take writes and the intake queue is "
                "unreachable; retry later with the same order_id"
            ) from None
        return str(answer["MessageId"])
