"""moto for the tests: its server on a loopback port (what the lab runs), and the intake queue with its
dead-letter queue as the stacks and the lab make it."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def moto_server_at(port: int) -> Iterator[str]:
    """moto's server on 127.0.0.1:port for the block, starting empty; its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        # The threaded server shares this process's moto backends, so it would start with whatever an
        # earlier test left in them; reset, as a server of its own process would start.
        reset = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=10).close()
        yield url
    finally:
        server.stop()


def create_intake_queue(sqs: Any, name: str = "intake") -> tuple[str, str]:
    """(queue URL, dead-letter queue URL): `name` with `name-dlq` behind it (redrive policy)."""
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "5"})
    return sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})["QueueUrl"], dlq
