"""Data migration: fill order_items.line_total_cents for every existing line.

Commits after every batch of orders, oldest first, to keep row locks short on a large table.
"""

BATCH_ORDERS = 1000


def migrate(conn):
    filled = 0
    last = None
    with conn.cursor() as cur:
        while True:
            if last is None:
                cur.execute("SELECT id, created_at FROM orders ORDER BY created_at, id LIMIT %s", (BATCH_ORDERS,))
            else:
                cur.execute(
                    "SELECT id, created_at FROM orders WHERE (created_at, id) > (%s, %s)"
                    " ORDER BY created_at, id LIMIT %s",
                    (last[1], last[0], BATCH_ORDERS),
                )
            rows = cur.fetchall()
            if not rows:
                break
            cur.execute(
                "UPDATE order_items SET line_total_cents = quantity::bigint * unit_price_cents"
                " WHERE order_id = ANY(%s::uuid[]) AND line_total_cents IS NULL",
                ([row[0] for row in rows],),
            )
            filled += cur.rowcount
            conn.commit()
            last = rows[-1]
    return filled
