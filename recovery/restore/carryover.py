"""Carry the changes accepted after a restore point from the failed database into the restored one.

After a database rollback the live database is the restore point (the previous release's schema) and
the failed database is kept aside as `<live>_replaced_<id>`. Every user, order, order line, payment,
event and stock level written after the restore point is read from the failed database and written into
live in the previous schema, idempotently (a rerun changes nothing). An order whose total does not match
its lines (what a corrupting release leaves) is never written: it is listed, with its payments, for a
person to decide. Reads use whichever column names the failed schema has (v1 `name`, v2 `full_name`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from recovery.drivers import db as db_driver
from recovery.errors import PreconditionFailed
from recovery.restore.rows import (
    SCHEMA,
    TableShape,
    advance_sequences_past_rows,
    column_names,
    insert_statement,
    table_shape,
)
from recovery.targets.model import Database
from recovery.verify.session import existing_tables

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


# Columns a release renamed: (table, name in the restored, previous schema) -> name in the failed schema.
RENAMED: dict[tuple[str, str], str] = {("users", "name"): "full_name"}

# What is read from the failed database, per table (parameters: the cutoff, twice, or the carried
# orders' ids), in the order the rows are written. Columns come from live's own catalog.
_READ: dict[str, tuple[str, str]] = {
    "users": ("created_at >= %(cutoff)s", ""),
    "orders": ("created_at >= %(cutoff)s OR updated_at >= %(cutoff)s", ""),
    "order_items": ("order_id = ANY(%(ids)s::uuid[])", ""),
    "transactions": ("created_at >= %(cutoff)s OR order_id = ANY(%(ids)s::uuid[])", ""),
    "events": ("at >= %(cutoff)s", ""),
}


@dataclass(frozen=True)
class WriteRule:
    """How a carried row meets a live row with the same key: kept (no `update`), or those columns set
    from the carried row when `when` holds."""

    update: tuple[str, ...] = ()
    when: str | None = None


_WRITE: dict[str, WriteRule] = {
    "users": WriteRule(),
    "orders": WriteRule(("status", "updated_at"), "target.updated_at < excluded.updated_at"),
    "order_items": WriteRule(),
    "transactions": WriteRule(("status",), "target.status <> excluded.status"),
    "events": WriteRule(),
}


# What a rollback carries: every table above, and the stock levels of products.
ALL_CARRIED = frozenset({*_WRITE, "products"})
# What a restore carries of the tables it restored: the rows written after its moment, never stock levels
# (a restore of products means the backup's products).
RESTORE_CARRIES = frozenset(_WRITE)
# What a failback carries from an old writer after the split: orders with their lines and payments, and
# users; stock by the units sold (both writers sold), and no events (both advanced one id sequence).
SPLIT_CARRIES = frozenset({"users", "orders", "order_items", "transactions"})


@dataclass(frozen=True)
class _Table:
    shape: TableShape  # live's shape: the rows are written in its columns
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.shape.columns, row, strict=True)) for row in self.rows]


def _select(
    failed: psycopg.Connection[Any], shape: TableShape, where: str, params: Mapping[str, Any], schema: str
) -> _Table:
    """Rows of the failed database's table in live's columns (a renamed column read by its new name)."""
    present = column_names(failed, shape.table, schema)
    columns: list[sql.Composable] = []
    for name in shape.columns:
        found = name if name in present else RENAMED.get((shape.table, name))
        if found is None or found not in present:
            raise PreconditionFailed(
                f"the failed database's {shape.table} has no column {name} (nor a known rename of it); "
                "carry the rows over by hand",
                code="rollback.carry_over_schema",
            )
        columns.append(sql.Identifier(found))
    query = sql.SQL("SELECT {} FROM {} WHERE ").format(
        sql.SQL(", ").join(columns), sql.Identifier(schema, shape.table)
    ) + sql.SQL(where)  # type: ignore[arg-type]  # constants of this module
    return _Table(shape, [tuple(row) for row in failed.execute(query, params)])


def _read(
    failed: psycopg.Connection[Any], live: psycopg.Connection[Any], cutoff: datetime, set_aside: str | None
) -> dict[str, _Table]:
    """The failed side's rows: its tables in `set_aside` (a schema of live) where a restore swapped them
    out, the others in public."""
    moved = existing_tables(failed, set_aside) if set_aside else frozenset()

    def schema_of(table: str) -> str:
        return set_aside if set_aside and table in moved else SCHEMA

    tables: dict[str, _Table] = {}
    params: dict[str, Any] = {"cutoff": cutoff, "ids": []}
    for table, (where, _) in _READ.items():
        tables[table] = _select(failed, table_shape(live, table), where, params, schema_of(table))
        if table == "orders":
            params["ids"] = [str(row["id"]) for row in tables[table].dicts()]
    stock = failed.execute(
        sql.SQL("SELECT id, stock FROM {}").format(sql.Identifier(schema_of("products"), "products"))
    ).fetchall()
    tables["products"] = _Table(
        TableShape("products", ("id", "stock"), ("id",), False), [tuple(r) for r in stock]
    )
    return tables


def _orders(table: _Table) -> list[OrderRow]:
    return [
        OrderRow(
            str(r["id"]),
            int(r["user_id"]),
            str(r["status"]),
            int(r["total_cents"]),
            r["created_at"],
            r["updated_at"],
        )
        for r in table.dicts()
    ]


def _items(table: _Table) -> list[ItemRow]:
    return [
        ItemRow(
            str(r["order_id"]),
            int(r["line_no"]),
            int(r["product_id"]),
            int(r["quantity"]),
            int(r["unit_price_cents"]),
        )
        for r in table.dicts()
    ]


# The rule of `split_orders` in SQL: orders written since the cutoff whose total is not their lines' sum.
_DAMAGED_SINCE = (
    "SELECT count(*) FROM orders o WHERE (o.created_at >= %(cutoff)s OR o.updated_at >= %(cutoff)s)"
    " AND o.total_cents IS DISTINCT FROM"
    " (SELECT sum(i.quantity::bigint * i.unit_price_cents) FROM order_items i WHERE i.order_id = o.id)"
)


def damaged_since(conn: psycopg.Connection[Any], restore_point_at: datetime) -> int:
    """How many orders a carry-over from this database after `restore_point_at` would list for a person."""
    row = conn.execute(_DAMAGED_SINCE, {"cutoff": restore_point_at - LOOKBACK}).fetchone()
    return int(row[0]) if row else 0


def carry_over(
    db: Database,
    *,
    failed_db: str,
    restore_point_at: str,
    tables: Collection[str] | None = None,
    set_aside: str | None = None,
) -> CarryOverReport:
    """Copy what the failed database accepted after `restore_point_at` into `db` (the live database).

    `tables` limits what is written (default: everything a rollback carries; a restore carries only the
    tables it restored, the others came from live); stock levels are set only with `products`.
    `set_aside` names the schema of `failed_db` a restore swapped live's tables out to (`failed_db` is
    then the live database itself)."""
    cutoff = datetime.fromisoformat(restore_point_at) - LOOKBACK
    written = None if tables is None else set(tables)
    with (
        db_driver.connect(db, dbname=failed_db, autocommit=False) as failed,
        db_driver.connect(db, autocommit=False) as live,
    ):
        return _carry(
            failed,
            live,
            cutoff,
            ALL_CARRIED if written is None else written,
            split=False,
            set_aside=set_aside,
        )


def carry_over_split(source: Database, into: Database, *, split_at: str) -> CarryOverReport:
    """Copy what an old writer (`source`, fenced) acknowledged after `split_at` (the promotion of the
    new writer) into `into`, the new writer, which took its own writes since. Unlike a rollback's
    carry-over, the new writer's stock is not replaced: the units of each order carried in are taken
    from it, and an order it has no stock left for is listed for a person, never written. Events are
    not carried (their ids come from a sequence both writers advanced)."""
    cutoff = datetime.fromisoformat(split_at) - LOOKBACK
    with (
        db_driver.connect(source, autocommit=False) as failed,
        db_driver.connect(into, autocommit=False) as live,
    ):
        return _carry(failed, live, cutoff, SPLIT_CARRIES, split=True)


def _carry(
    failed: psycopg.Connection[Any],
    live: psycopg.Connection[Any],
    cutoff: datetime,
    written: Collection[str],
    *,
    split: bool,
    set_aside: str | None = None,
) -> CarryOverReport:
    failed.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    failed.read_only = True
    tables = _read(failed, live, cutoff, set_aside)
    failed.rollback()
    good, damaged = split_orders(_orders(tables["orders"]), _items(tables["order_items"]))
    if split:
        short = _short_of_stock(live, good, _items(tables["order_items"]))
        good = tuple(o for o in good if o.id not in {s[0].id for s in short})
        damaged = (*damaged, *short)
    live.rollback()  # the catalog reads' transaction; the writes get their own below
    good_ids = {o.id for o in good}
    payments_of: dict[str, list[str]] = {}
    for payment in tables["transactions"].dicts():
        payments_of.setdefault(str(payment["order_id"]), []).append(str(payment["id"]))
    with live.transaction():
        report = _write(live, tables, good_ids, written, take_sold_stock=split)
    return CarryOverReport(
        cutoff=cutoff.isoformat(),
        **report,
        damaged=tuple(
            DamagedOrder(o.id, o.status, o.total_cents, items_sum, tuple(payments_of.get(o.id, ())), why)
            for o, items_sum, why in damaged
        ),
    )


def _short_of_stock(
    live: psycopg.Connection[Any], good: Sequence[OrderRow], items: Sequence[ItemRow]
) -> tuple[tuple[OrderRow, int, str], ...]:
    """Orders new to the live database that its stock cannot cover, oldest first served. Each is
    (order, its lines' sum, why)."""
    ids = [o.id for o in good]
    present = {str(r[0]) for r in live.execute("SELECT id FROM orders WHERE id = ANY(%s::uuid[])", (ids,))}
    stock = {int(r[0]): int(r[1]) for r in live.execute("SELECT id, stock FROM products")}
    lines: dict[str, list[ItemRow]] = {}
    for item in items:
        lines.setdefault(item.order_id, []).append(item)
    short: list[tuple[OrderRow, int, str]] = []
    for order in sorted(good, key=lambda o: o.created_at):
        if order.id in present or order.status == "cancelled":
            continue
        need: dict[int, int] = {}
        for item in lines.get(order.id, []):
            need[item.product_id] = need.get(item.product_id, 0) + item.quantity
        lacking = next((p for p, q in sorted(need.items()) if stock.get(p, 0) < q), None)
        total = sum(i.quantity * i.unit_price_cents for i in lines.get(order.id, []))
        if lacking is not None:
            short.append(
                (
                    order,
                    total,
                    f"the writer has {stock.get(lacking, 0)} of product {lacking} left, the order needs "
                    f"{need[lacking]}",
                )
            )
            continue
        for product, quantity in need.items():
            stock[product] -= quantity
    return tuple(short)


def _carried(table: _Table, good_ids: set[str]) -> list[tuple[Any, ...]]:
    """The rows to write: an order's rows only when the order is carried (not damaged)."""
    if table.shape.table in ("orders", "order_items", "transactions"):
        key = "id" if table.shape.table == "orders" else "order_id"
        return [
            row for row, named in zip(table.rows, table.dicts(), strict=True) if str(named[key]) in good_ids
        ]
    return table.rows


def _write(
    live: psycopg.Connection[Any],
    tables: Mapping[str, _Table],
    good_ids: set[str],
    written: Collection[str],
    *,
    take_sold_stock: bool = False,
) -> dict[str, int]:
    counts: dict[str, int] = {"orders_inserted": 0, "orders_updated": 0, "stock_updates": 0}
    inserted_ids: set[str] = set()
    with live.cursor() as cur:
        for name, rule in _WRITE.items():
            if name not in written:
                counts[name] = 0
                continue
            table = tables[name]
            rows = [
                tuple(Jsonb(v) if isinstance(v, dict | list) else v for v in row)
                for row in _carried(table, good_ids)
            ]
            statement = insert_statement(
                table.shape, update=rule.update, when=rule.when, report_inserted=name == "orders"
            )
            if name != "orders":
                cur.executemany(statement, rows)
                counts[name] = _count(cur)
                continue
            inserted = updated = 0
            for row in rows:
                named = dict(zip(table.shape.columns, row, strict=True))
                cur.execute(statement, row)
                result = cur.fetchone()
                if result is not None:
                    inserted += bool(result[0])
                    updated += not result[0]
                    if result[0] and named["status"] != "cancelled":
                        inserted_ids.add(str(named["id"]))
            counts["orders_inserted"], counts["orders_updated"] = inserted, updated
        if take_sold_stock:
            # Both writers sold since the split: take the units of the orders carried in from the writer.
            sold: dict[int, int] = {}
            for item in _items(tables["order_items"]):
                if item.order_id in inserted_ids:
                    sold[item.product_id] = sold.get(item.product_id, 0) + item.quantity
            cur.executemany(
                "UPDATE products SET stock = stock - %s WHERE id = %s",
                [(q, p) for p, q in sorted(sold.items())],
            )
            counts["stock_updates"] = _count(cur)
        elif "products" in written:
            # Stock levels after every accepted sale (and restock): the failed database's are the truth.
            cur.executemany(
                "UPDATE products SET stock = %s WHERE id = %s AND stock <> %s",
                [(stock, product, stock) for product, stock in tables["products"].rows],
            )
            counts["stock_updates"] = _count(cur)
        # Explicit ids were inserted: move the id generators past them.
        for name in _WRITE:
            if name in written:
                advance_sequences_past_rows(live, name)
    return {
        "users": counts["users"],
        "orders_inserted": counts["orders_inserted"],
        "orders_updated": counts["orders_updated"],
        "items": counts["order_items"],
        "transactions": counts["transactions"],
        "events": counts["events"],
        "stock_updates": counts["stock_updates"],
    }


def _count(cur: psycopg.Cursor[Any]) -> int:
    # executemany sums rowcount over its statements in psycopg 3.
    return max(cur.rowcount, 0)
