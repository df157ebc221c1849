"""The toolkit's probe orders: placed to prove the service works, then removed without a trace.

Health gates and smoke tests place real orders through the API, as users of the reserved domain
`order-recovery.invalid` (RFC 2606: it can never be a customer's address). Right after a probe has
proved what it came for, it asks `DELETE /orders/{id}` and the order goes as if it had never been
placed, in one transaction: its stock back on the shelf, its payment, items, events and head row gone.
Only probe orders can be removed; a customer's order is cancelled, never deleted.
"""

from __future__ import annotations

import uuid
from typing import Any

from orderservice.db import Database
from orderservice.errors import Conflict, NotFound

PROBE_EMAIL_DOMAIN = "@order-recovery.invalid"
# An order's events are written in its own transactions, and a probe order is removed seconds after it
# was placed: its events are among the newest, so the search stays on the newest rows of the primary key
# instead of scanning the whole log.
RECENT_EVENTS = 100_000


def remove_probe_order(db: Database, order_id: uuid.UUID) -> dict[str, Any]:
    """Remove one probe order with everything it wrote; NotFound or Conflict (a customer's order)."""
    key = str(order_id)
    with db.transaction() as cur:
        cur.execute(
            "SELECT u.email FROM orders o JOIN users u ON u.id = o.user_id WHERE o.id = %s FOR UPDATE OF o",
            (key,),
        )
        row = cur.fetchone()
        if row is None:
            raise NotFound(f"order {order_id} does not exist")
        if not str(row[0]).endswith(PROBE_EMAIL_DOMAIN):
            raise Conflict(f"order {order_id} is a customer's order; only probe orders can be removed")
        cur.execute(
            "UPDATE products p SET stock = p.stock + s.units"
            " FROM (SELECT product_id, sum(quantity) AS units FROM order_items WHERE order_id = %s"
            "       GROUP BY product_id) s"
            " WHERE p.id = s.product_id RETURNING s.units",
            (key,),
        )
        units = sum(int(r[0]) for r in cur.fetchall())
        cur.execute(
            "DELETE FROM events WHERE id > (SELECT coalesce(max(id), 0) FROM events) - %s AND subject = %s",
            (RECENT_EVENTS, key),
        )
        events = cur.rowcount
        cur.execute("DELETE FROM transactions WHERE order_id = %s", (key,))
        payments = cur.rowcount
        cur.execute("DELETE FROM order_items WHERE order_id = %s", (key,))
        lines = cur.rowcount
        cur.execute("DELETE FROM orders WHERE id = %s", (key,))
    return {
        "id": key,
        "removed": True,
        "lines": lines,
        "stock_returned": units,
        "payments": payments,
        "events": events,
    }
