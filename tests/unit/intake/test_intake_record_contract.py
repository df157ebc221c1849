"""The queued-order contract between the order service (which writes the message in degraded mode) and
the toolkit (which replays it): one documented example, pinned from both sides. The service never imports
the toolkit, so its message builder runs in its own interpreter here, as on a host."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recovery.intake.record import IntakeItem, IntakeOrder, PoisonMessage, from_message

SERVICE_DIR = Path(__file__).resolve().parents[3] / "service"
# The example docs/intake.md and orderservice/intake.py show.
EXAMPLE = {
    "format": 1,
    "order_id": "6f1c2a9e-3b7d-4c1e-9a55-0d2e8b7f4a10",
    "user_id": 42,
    "items": [{"product_id": 7, "quantity": 2}, {"product_id": 9, "quantity": 1}],
    "received_at": "2026-12-06T23:40:05.123456+00:00",
    "channel": "web",
    "reference": None,
}


def service_message(order_id: str, user_id: int, lines: list[tuple[int, int]], at: str) -> str:
    code = (
        "import sys; from datetime import datetime; from orderservice.intake import message_for;"
        f"print(message_for({order_id!r}, {user_id}, {tuple(lines)!r}, datetime.fromisoformat({at!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=SERVICE_DIR, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_service_writes_the_documented_example_and_the_toolkit_reads_it() -> None:
    written = service_message(EXAMPLE["order_id"], 42, [(7, 2), (9, 1)], EXAMPLE["received_at"])
    assert json.loads(written) == EXAMPLE
    order = from_message(written)
    assert order.order_id == uuid.UUID(EXAMPLE["order_id"])
    assert order.service_body() == {
        "order_id": EXAMPLE["order_id"],
        "user_id": 42,
        "items": [{"product_id": 7, "quantity": 2}, {"product_id": 9, "quantity": 1}],
    }


def test_the_toolkit_writes_the_same_fields_as_the_example() -> None:
    order = IntakeOrder(
        order_id=uuid.UUID(EXAMPLE["order_id"]),
        user_id=42,
        items=(IntakeItem(product_id=7, quantity=2), IntakeItem(product_id=9, quantity=1)),
        received_at=datetime(2026, 12, 6, 23, 40, 5, 123456, tzinfo=UTC),
        channel="web",
    )
    written = json.loads(order.to_message())
    assert set(written) == set(EXAMPLE)
    assert from_message(json.dumps(EXAMPLE)) == order


def test_the_service_refuses_to_queue_what_the_replay_would_set_aside() -> None:
    # A quantity the database could take but the record cannot carry: refused now, never acknowledged.
    code = (
        "from datetime import datetime, timezone; from orderservice.intake import message_for, NotQueueable\n"
        "try:\n    message_for('x', 1, ((1, 10001),), datetime.now(timezone.utc))\n"
        "except NotQueueable as exc:\n    print(exc.status, exc.code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=SERVICE_DIR, capture_output=True, text=True)
    assert done.stdout.split() == ["503", "unavailable"]
    with pytest.raises(PoisonMessage, match="quantity"):
        from_message(json.dumps({**EXAMPLE, "items": [{"product_id": 1, "quantity": 10001}]}))
