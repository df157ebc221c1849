"""Orders and payments: idempotent creation (client-chosen id), stock in the same transaction, payment."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from orderservice import edge, events, pricing, rows, stock
from orderservice.db import Database
from orderservice.errors import BadRequest, Conflict, NotFound

MAX_LINES = 50
PAYMENT_NAMESPACE = uuid.UUID("5b0f1c52-6a3e-4c55-9a51-6f2d8e0c7a11")


@dataclass(frozen=True)
class OrderRequest:
    order_id: uuid.UUID
    user_id: int
    lines: tuple[tuple[int, int], ...]  # (product_id, quantity) in the client's order


def parse_uuid(value: Any, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise BadRequest(f"{what} must be a UUID, got {str(value)[:40]!r}") from None


INT_MAX = 2**31 - 1  # an integer column's widest value (quantities)


def parse_order_request(body: Any) -> OrderRequest:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with order_id, user_id and items")
    if "order_id" not in body:
        raise BadRequest("order_id is required: choose a UUID per order so retries are safe")
    order_id = parse_uuid(body["order_id"], "order_id")
    user_id = edge.bounded_int(body.get("user_id"), "user_id")
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise BadRequest("items must be a non-empty list of {product_id, quantity}")
    if len(items) > MAX_LINES:
        raise BadRequest(f"an order has at most {MAX_LINES} lines")
    lines = []
    for n, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            raise BadRequest(f"item {n} must be an object with product_id and quantity")
        lines.append(
            (
                edge.bounded_int(item.get("product_id"), f"item {n} product_id"),
                edge.bounded_int(item.get("quantity"), f"item {n} quantity", INT_MAX),
            )
        )
    return OrderRequest(order_id, user_id, tuple(lines))


def create_order(db: Database, request: OrderRequest) -> tuple[bool, dict[str, Any]]:
    """Place the order once. Returns (created, order); a replay of the same id returns the stored order."""
    with db.transaction() as cur:
        if rows.user_by_id(cur, request.user_id) is None:
            raise NotFound(f"user {request.user_id} does not exist")
        # The head row goes in first: a concurrent replay of the same id waits on it, then sees it.
        if not rows.insert_order(cur, request.order_id, request.user_id):
            existing = rows.fetch_order(cur, request.order_id)
            assert existing is not None
            if existing["user_id"] != request.user_id:
                raise Conflict(f"order {request.order_id} exists for another user; use a new order id")
            return False, existing
        wanted: dict[int, int] = {}
        for product_id, quantity in request.lines:
            wanted[product_id] = wanted.get(product_id, 0) + quantity
        prices = stock.reserve(cur, wanted)
        priced = []
        for line_no, (product_id, quantity) in enumerate(request.lines, start=1):
            rows.insert_item(cur, request.order_id, line_no, product_id, quantity, prices[product_id])
            priced.append((quantity, prices[product_id]))
        total = pricing.order_total_cents(priced)
        rows.set_total(cur, request.order_id, total)
        events.record(
            cur,
            "order.placed",
            str(request.order_id),
            {"user_id": request.user_id, "total_cents": total, "lines": len(priced)},
        )
        order = rows.fetch_order(cur, request.order_id)
        assert order is not None
        return True, order


def get_order(db: Database, order_id: uuid.UUID) -> dict[str, Any]:
    with db.transaction() as cur:
        order = rows.fetch_order(cur, order_id)
    if order is None:
        raise NotFound(f"order {order_id} does not exist")
    return order


def list_orders(db: Database, after: uuid.UUID | None, limit: int) -> dict[str, Any]:
    with db.transaction() as cur:
        page = rows.fetch_orders(cur, after, limit)
    return {"orders": page, "next": page[-1]["id"] if len(page) == limit else None}


def _transaction(row: tuple) -> dict[str, Any]:
    return {
        "id": str(row[0]),
        "order_id": str(row[1]),
        "amount_cents": row[2],
        "status": row[3],
        "created_at": row[4].isoformat(),
    }


def pay_order(db: Database, order_id: uuid.UUID) -> tuple[bool, dict[str, Any]]:
    """Capture the order's total once. Returns (created, transaction); paying again returns the same one."""
    transaction_id = uuid.uuid5(PAYMENT_NAMESPACE, str(order_id))
    with db.transaction() as cur:
        order = rows.fetch_order(cur, order_id, lock=True)
        if order is None:
            raise NotFound(f"order {order_id} does not exist")
        cur.execute(
            "SELECT id, order_id, amount_cents, status, created_at FROM transactions"
            " WHERE order_id = %s AND status = 'captured'",
            (str(order_id),),
        )
        existing = cur.fetchone()
        if existing is not None:
            return False, _transaction(existing)
        if order["status"] != "placed":
            raise Conflict(f"order {order_id} is {order['status']}; only placed orders can be paid")
        cur.execute(
            "INSERT INTO transactions (id, order_id, amount_cents, status) VALUES (%s, %s, %s, 'captured')"
            " RETURNING id, order_id, amount_cents, status, created_at",
            (str(transaction_id), str(order_id), order["total_cents"]),
        )
        created = cur.fetchone()
        cur.execute("UPDATE orders SET status = 'paid', updated_at = now() WHERE id = %s", (str(order_id),))
        events.record(cur, "order.paid", str(order_id), {"amount_cents": order["total_cents"]})
        return True, _transaction(created)
