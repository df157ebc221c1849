"""The failback's carry-over on real PostgreSQL: what an old writer acknowledged after the split goes into
the new writer, which took its own orders meanwhile; stock is taken, not overwritten; what cannot be
carried is listed for a person, never dropped; a rerun changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from conftest import Postgres

from recovery.restore.carryover import carry_over_split
from recovery.targets.model import Database


@pytest.fixture
def split(postgres: Postgres) -> Iterator[tuple[Database, Database]]:
    """Two databases with one history up to the split: the old writer and the new one (its copy)."""
    with postgres.seeded_database("old_writer", orders=50) as old:
        new = f"new_writer_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{new}" TEMPLATE "{old}" OWNER orders')
        try:

            def database(name: str) -> Database:
                return Database(
                    address="127.0.0.1",
                    port=postgres.port,
                    name=name,
                    user="postgres",
                    passfile=postgres.passfile,
                )

            yield database(old), database(new)
        finally:
            postgres.drop_database(new)


def place(
    postgres: Postgres,
    dbname: str,
    lines: list[tuple[int, int]],
    *,
    total: int | None = None,
    paid: bool = False,
) -> str:
    """An order as the service writes it: lines (product, quantity) at the product's price, stock taken."""
    order_id = str(uuid.uuid4())
    with psycopg.connect(postgres.conninfo(dbname)) as conn:
        user = conn.execute("SELECT min(id) FROM users").fetchone()[0]  # type: ignore[index]
        prices = []
        for product, quantity in lines:
            row = conn.execute(
                "UPDATE products SET stock = stock - %s WHERE id = %s RETURNING price_cents",
                (quantity, product),
            ).fetchone()
            assert row is not None
            prices.append(int(row[0]))
        sums = sum(q * p for (_, q), p in zip(lines, prices, strict=True))
        conn.execute(
            "INSERT INTO orders (id, user_id, status, total_cents) VALUES (%s, %s, %s, %s)",
            (order_id, user, "paid" if paid else "placed", sums if total is None else total),
        )
        for line_no, ((product, quantity), price) in enumerate(zip(lines, prices, strict=True), 1):
            conn.execute(
                "INSERT INTO order_items VALUES (%s, %s, %s, %s, %s)",
                (order_id, line_no, product, quantity, price),
            )
        if paid:
            conn.execute(
                "INSERT INTO transactions (id, order_id, amount_cents, status)"
                " VALUES (%s, %s, %s, 'captured')",
                (str(uuid.uuid4()), order_id, sums),
            )
    return order_id


def stock(postgres: Postgres, dbname: str, product: int) -> int:
    return int(postgres.query(dbname, "SELECT stock FROM products WHERE id = %s", (product,))[0][0])


def test_orders_after_the_split_are_carried_with_their_stock_and_conflicts_go_to_a_person(
    postgres: Postgres, split: tuple[Database, Database]
) -> None:
    old, new = split
    postgres.execute(new.name, "UPDATE products SET stock = 5 WHERE id = 2")
    postgres.execute(old.name, "UPDATE products SET stock = 50 WHERE id IN (1, 2)")
    split_at = datetime.now(UTC).isoformat()
    stock_before = stock(postgres, new.name, 1)
    paid = place(postgres, old.name, [(1, 2)], paid=True)
    placed = place(postgres, old.name, [(1, 1), (3, 1)])
    damaged = place(postgres, old.name, [(1, 1)], total=1)  # a total that does not match its lines
    short = place(postgres, old.name, [(2, 7)])  # the new writer has 5 left
    mine = place(postgres, new.name, [(1, 1)])  # the new writer's own order since the split

    report = carry_over_split(old, new, split_at=split_at)

    carried = {
        str(r[0])
        for r in postgres.query(
            new.name,
            "SELECT id FROM orders WHERE id = ANY(%s::uuid[])",
            ([paid, placed, damaged, short, mine],),
        )
    }
    assert carried == {paid, placed, mine}
    assert report.orders_inserted == 2 and report.transactions == 1
    reasons = {d.order_id: d.reason for d in report.damaged}
    price = int(postgres.query(old.name, "SELECT price_cents FROM products WHERE id = 1")[0][0])
    assert reasons == {
        damaged: f"total 1 does not match its lines ({price})",
        short: "the writer has 5 of product 2 left, the order needs 7",
    }
    # Stock: the new writer's own sale stays taken, and the carried orders' units are taken too.
    assert stock(postgres, new.name, 1) == stock_before - 1 - 2 - 1
    assert stock(postgres, new.name, 2) == 5

    again = carry_over_split(old, new, split_at=split_at)
    assert (again.orders_inserted, again.orders_updated, again.transactions) == (0, 0, 0)
    assert stock(postgres, new.name, 1) == stock_before - 4
