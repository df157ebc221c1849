"""Data migration: fill order_items.line_total_cents for every existing line.

Runs inside the migration runner's single transaction (no commit here), in batches of orders so the
progress can be logged and each statement stays small; a failure rolls the whole backfill back.
"""

BATCH_ORDERS = 5000


def migrate(conn):
    filled = 0
    last_id = None
    with conn.cursor() as cur:
        while True:
            if last_id is None:
                cur.execute("SELECT id FROM orders ORDER BY id LIMIT %s", (BATCH_ORDERS,))
            else:
                cur.execute("SELECT id FROM orders WHERE id > %s ORDER BY id LIMIT %s", (last_id, BATCH_ORDERS))
            ids = [row[0] for row in cur.fetchall()]
            if not ids:
                break
            cur.execute(
                "UPDATE order_items SET line_total_cents = quantity::bigint * unit_price_cents"
                " WHERE order_id = ANY(%s::uuid[]) AND line_total_cents IS NULL",
                (ids,),
            )
            filled += cur.rowcount
            last_id = ids[-1]
    return filled
