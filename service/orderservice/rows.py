"""Schema-dependent SQL of release v1: how users and orders are stored and read back.

Every statement that names a column that changes between schema versions lives here, so a release that
changes the schema replaces this one module.
"""

from __future__ import annotations

import uuid
from typing import Any

ORDER_COLUMNS = "id, user_id, status, total_cents, created_at, updated_at"
ITEM_COLUMNS = "order_id, line_no, product_id, quantity, unit_price_cents"


def _user(row: tuple) -> dict[str, Any]:
    return {"id": row[0], "email": row[1], "name": row[2], "created_at": row[3].isoformat()}


def insert_user(cur: Any, email: str, name: str) -> dict[str, Any] | None:
    cur.execute(
        "INSERT INTO users (email, name) VALUES (%s, %s) ON CONFLICT (email) DO NOTHING"
        " RETURNING id, email, name, created_at",
        (email, name),
    )
    row = cur.fetchone()
    return _user(row) if row else None


def user_by_email(cur: Any, email: str) -> dict[str, Any] | None:
    cur.execute("SELECT id, email, name, created_at FROM users WHERE email = %s", (email,))
    row = cur.fetchone()
    return _user(row) if row else None


def user_by_id(cur: Any, user_id: int) -> dict[str, Any] | None:
    cur.execute("SELECT id, email, name, created_at FROM users WHERE id = %s", (user_id,))
    row = cur.fetchone()
    return _user(row) if row else None


def insert_order(cur: Any, order_id: uuid.UUID, user_id: int) -> bool:
    """Insert the order head with a zero total; False when the id exists (an idempotent replay)."""
    cur.execute(
        "INSERT INTO orders (id, user_id, status, total_cents) VALUES (%s, %s, 'placed', 0)"
        " ON CONFLICT (id) DO NOTHING RETURNING id",
        (str(order_id), user_id),
    )
    return cur.fetchone() is not None


def insert_item(
    cur: Any, order_id: uuid.UUID, line_no: int, product_id: int, quantity: int, unit_price_cents: int
) -> None:
    cur.execute(
        "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price_cents)"
        " VALUES (%s, %s, %s, %s, %s)",
        (str(order_id), line_no, product_id, quantity, unit_price_cents),
    )


def set_total(cur: Any, order_id: uuid.UUID, total_cents: int) -> None:
    cur.execute("UPDATE orders SET total_cents = %s WHERE id = %s", (total_cents, str(order_id)))


def _order(row: tuple, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": str(row[0]),
        "user_id": row[1],
        "status": row[2],
        "total_cents": row[3],
        "created_at": row[4].isoformat(),
        "updated_at": row[5].isoformat(),
        "items": items,
    }


def _item(row: tuple) -> dict[str, Any]:
    return {"line_no": row[1], "product_id": row[2], "quantity": row[3], "unit_price_cents": row[4]}


def fetch_order(cur: Any, order_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
    cur.execute(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = %s" + (" FOR UPDATE" if lock else ""),
        (str(order_id),),
    )
    head = cur.fetchone()
    if head is None:
        return None
    cur.execute(
        f"SELECT {ITEM_COLUMNS} FROM order_items WHERE order_id = %s ORDER BY line_no", (str(order_id),)
    )
    return _order(head, [_item(r) for r in cur.fetchall()])


def fetch_orders(cur: Any, after: uuid.UUID | None, limit: int) -> list[dict[str, Any]]:
    """A page of orders by id (keyset pagination), each with its items, in two queries."""
    if after is None:
        cur.execute(f"SELECT {ORDER_COLUMNS} FROM orders ORDER BY id LIMIT %s", (limit,))
    else:
        cur.execute(
            f"SELECT {ORDER_COLUMNS} FROM orders WHERE id > %s ORDER BY id LIMIT %s", (str(after), limit)
        )
    heads = cur.fetchall()
    if not heads:
        return []
    ids = [str(h[0]) for h in heads]
    cur.execute(
        f"SELECT {ITEM_COLUMNS} FROM order_items WHERE order_id = ANY(%s::uuid[]) ORDER BY order_id, line_no",
        (ids,),
    )
    items: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    for row in cur.fetchall():
        items[str(row[0])].append(_item(row))
    return [_order(h, items[str(h[0])]) for h in heads]
