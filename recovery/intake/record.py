"""An order taken while the core could not write it: the message the intake queue holds.

The order id is the idempotency key all the way down: the client chose it (or, for orders entered from a
CSV file, it is derived from the channel and the order's reference, so entering the same file twice
names the same orders), the queue carries it, and the order service creates an order once per id. That
is what makes a replay exactly once, whatever the queue redelivers.

Only what the order service needs travels: user id, products and quantities, when and how it arrived.
No name, address or payment detail is ever queued.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

FORMAT = 1
# Orders entered from files get ids in their own namespace: uuid5(INTAKE_NAMESPACE, "phone:REF-1").
INTAKE_NAMESPACE = uuid.UUID("0b8f6d0e-5f2a-4c1e-9a7b-3c2d1e0f4a5b")
MAX_LINES = 50  # the order service's own limit (orderservice.orders.MAX_LINES)

Channel = Literal["web", "phone", "email"]


class PoisonMessage(ValueError):
    """A queued message that can never become an order as it stands; it goes to the dead-letter queue."""


class IntakeItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    product_id: int = Field(gt=0)
    quantity: int = Field(gt=0, le=10_000)


class IntakeOrder(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal[1] = 1  # FORMAT
    order_id: uuid.UUID
    user_id: int = Field(gt=0)
    items: tuple[IntakeItem, ...] = Field(min_length=1, max_length=MAX_LINES)
    received_at: AwareDatetime
    channel: Channel
    reference: str | None = Field(default=None, max_length=200)  # "orders.csv line 12", a ticket number

    def to_message(self) -> str:
        return self.model_dump_json()

    def service_body(self) -> dict[str, Any]:
        """What POST /orders takes: the same order, keyed by the same id."""
        return {
            "order_id": str(self.order_id),
            "user_id": self.user_id,
            "items": [item.model_dump() for item in self.items],
        }


def order_id_for(channel: Channel, reference: str) -> uuid.UUID:
    """The id of an order entered by hand: the same channel and reference always give the same id."""
    return uuid.uuid5(INTAKE_NAMESPACE, f"{channel}:{reference}")


def from_message(body: str) -> IntakeOrder:
    """Parse a queued message; anything else is poison, with the first problem as its reason."""
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise PoisonMessage(f"not JSON ({exc.msg} at character {exc.pos})") from None
    try:
        return IntakeOrder.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "message"
        raise PoisonMessage(f"{where}: {first['msg']}") from None
