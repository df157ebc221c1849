"""Carry the changes accepted after a restore point from the failed database into the restored one.

After a database rollback the live database is the restore point (the previous release's schema) and
the failed database is kept aside as `<live>_replaced_<id>`. Every user, order, order line, payment,
event and stock level written after the restore point is read from the failed database and written into
live in the previous schema, idempotently (a rerun changes nothing). An order whose total does not match
its lines (what a corrupting release leaves) is never written: it is listed, with its payments, for a
person to decide. Reads use whichever column names the failed schema has (v1 `name`, v2 `full_name`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from recovery.drivers import db as db_driver
from recovery.targets.model import Database

# A transaction that began before the snapshot but committed after it is not in the restore point, yet
# carries a created_at (now() is the transaction's start) from before it: look back this far.
LOOKBACK = timedelta(minutes=5)


@dataclass(frozen=True)
class OrderRow:
    id: str
    user_id: int
    status: str
    total_cents: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ItemRow:
    order_id: str
    line_no: int
    product_id: int
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class DamagedOrder:
    """An order left for a person: what it says, what its lines add up to, and its payments."""

    order_id: str
    status: str
    total_cents: int
    items_cents: int
    payments: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class CarryOverReport:
    cutoff: str
    users: int = 0
    orders_inserted: int = 0
    orders_updated: int = 0
    items: int = 0
    transactions: int = 0
    events: int = 0
    stock_updates: int = 0
    damaged: tuple[DamagedOrder, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def split_orders(
    orders: Sequence[OrderRow], items: Sequence[ItemRow]
) -> tuple[tuple[OrderRow, ...], tuple[tuple[OrderRow, int, str], ...]]:
    """Orders safe to carry over, and damaged ones (order, its lines' sum, why). Pure."""
    sums: dict[str, int] = {}
    for item in items:
        sums[item.order_id] = sums.get(item.order_id, 0) + item.quantity * item.unit_price_cents
    good: list[OrderRow] = []
    damaged: list[tuple[OrderRow, int, str]] = []
    for order in orders:
        if order.id not in sums:
            damaged.append((order, 0, "the order has no lines"))
        elif sums[order.id] != order.total_cents:
            damaged.append(
                (
                    order,
                    sums[order.id],
                    f"total {order.total_cents} does not match its lines ({sums[order.id]})",
                )
            )
        else:
            good.append(order)
    return tuple(good), tuple(damaged)


def _columns(conn: psycopg.Connection[Any], table: str) -> frozenset[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = %s",
        (table,),
    ).fetchall()
    return frozenset(str(row[0]) for row in rows)


def _read(failed: psycopg.Connection[Any], cutoff: datetime) -> dict[str, Any]:
    name = "full_name" if "full_name" in _columns(failed, "users") else "name"
    users = failed.execute(
        f"SELECT id, email, {name}, created_at FROM users WHERE created_at >= %s", (cutoff,)
    ).fetchall()
    orders = [
        OrderRow(str(r[0]), int(r[1]), str(r[2]), int(r[3]), r[4], r[5])
        for r in failed.execute(
            "SELECT id, user_id, status, total_cents, created_at, updated_at FROM orders"
            " WHERE created_at >= %s OR updated_at >= %s",
            (cutoff, cutoff),
        )
    ]
    ids = [o.id for o in orders]
    items = [
        ItemRow(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]))
        for r in failed.execute(
            "SELECT order_id, line_no, product_id, quantity, unit_price_cents FROM order_items"
            " WHERE order_id = ANY(%s::uuid[])",
            (ids,),
        )
    ]
    transactions = failed.execute(
        "SELECT id, order_id, amount_cents, status, created_at FROM transactions"
        " WHERE created_at >= %s OR order_id = ANY(%s::uuid[])",
        (cutoff, ids),
    ).fetchall()
    events = failed.execute(
        "SELECT id, at, kind, subject, payload FROM events WHERE at >= %s", (cutoff,)
    ).fetchall()
    stock = failed.execute("SELECT id, stock FROM products").fetchall()
    return {
        "users": users,
        "orders": orders,
        "items": items,
        "transactions": transactions,
        "events": events,
        "stock": stock,
    }


def carry_over(db: Database, *, failed_db: str, restore_point_at: str) -> CarryOverReport:
    """Copy what the failed database accepted after `restore_point_at` into `db` (the live database)."""
    cutoff = datetime.fromisoformat(restore_point_at) - LOOKBACK
    with db_driver.connect(db, dbname=failed_db, autocommit=False) as failed:
        failed.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        failed.read_only = True
        rows = _read(failed, cutoff)
        failed.rollback()
    good, damaged = split_orders(rows["orders"], rows["items"])
    good_ids = {o.id for o in good}
    payments_of: dict[str, list[str]] = {}
    for t in rows["transactions"]:
        payments_of.setdefault(str(t[1]), []).append(str(t[0]))
    with db_driver.connect(db, autocommit=False) as live, live.transaction():
        report = _write(live, rows, good, good_ids)
    return CarryOverReport(
        cutoff=cutoff.isoformat(),
        **report,
        damaged=tuple(
            DamagedOrder(o.id, o.status, o.total_cents, items_sum, tuple(payments_of.get(o.id, ())), why)
            for o, items_sum, why in damaged
        ),
    )


def _write(
    live: psycopg.Connection[Any], rows: Mapping[str, Any], good: Sequence[OrderRow], good_ids: set[str]
) -> dict[str, int]:
    counts: dict[str, int] = {}
    with live.cursor() as cur:
        cur.executemany(
            "INSERT INTO users (id, email, name, created_at) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            rows["users"],
        )
        counts["users"] = _count(cur)
        inserted = updated = 0
        for order in good:
            cur.execute(
                "INSERT INTO orders (id, user_id, status, total_cents, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE"
                " SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at"
                " WHERE orders.updated_at < EXCLUDED.updated_at"
                " RETURNING (xmax = 0)",
                (
                    order.id,
                    order.user_id,
                    order.status,
                    order.total_cents,
                    order.created_at,
                    order.updated_at,
                ),
            )
            result = cur.fetchone()
            if result is not None:
                inserted += bool(result[0])
                updated += not result[0]
        counts["orders_inserted"], counts["orders_updated"] = inserted, updated
        cur.executemany(
            "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price_cents)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (i.order_id, i.line_no, i.product_id, i.quantity, i.unit_price_cents)
                for i in rows["items"]
                if i.order_id in good_ids
            ],
        )
        counts["items"] = _count(cur)
        cur.executemany(
            "INSERT INTO transactions (id, order_id, amount_cents, status, created_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status"
            " WHERE transactions.status <> EXCLUDED.status",
            [t for t in rows["transactions"] if str(t[1]) in good_ids],
        )
        counts["transactions"] = _count(cur)
        cur.executemany(
            "INSERT INTO events (id, at, kind, subject, payload) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING",
            [(e[0], e[1], e[2], e[3], Jsonb(e[4])) for e in rows["events"]],
        )
        counts["events"] = _count(cur)
        # Stock levels after every accepted sale (and restock): the failed database's are the truth.
        cur.executemany(
            "UPDATE products SET stock = %s WHERE id = %s AND stock <> %s",
            [(s[1], s[0], s[1]) for s in rows["stock"]],
        )
        counts["stock_updates"] = _count(cur)
        # Explicit ids were inserted: move the id generators past them.
        cur.execute("SELECT setval(pg_get_serial_sequence('users', 'id'), GREATEST(max(id), 1)) FROM users")
        cur.execute("SELECT setval(pg_get_serial_sequence('events', 'id'), GREATEST(max(id), 1)) FROM events")
    return counts


def _count(cur: psycopg.Cursor[Any]) -> int:
    # executemany sums rowcount over its statements in psycopg 3.
    return max(cur.rowcount, 0)
