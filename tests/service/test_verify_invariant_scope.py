"""Business invariants over the rows written since a moment (the health gates' scope), against the real
PostgreSQL of tests/service: a fault in a row written since is found by its own check, a fault in an
older row is left to the full checks, and the full checks still see everything.

Faults are planted in a copy schema (`CREATE TABLE ... AS`: no keys, defaults or constraints), so each
planted row states its own timestamps. Every schema and database a test creates is dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from recovery.verify import ALL_TABLES, run_invariants
from recovery.verify.invariants import InvariantReport

if TYPE_CHECKING:  # the fixture's type; conftest is not importable as a module of a package here
    from conftest import Postgres

ORDERS = 300


@pytest.fixture(scope="module")
def seeded(postgres: Postgres) -> Iterator[str]:
    with postgres.seeded_database("verify_scope", ORDERS) as name:
        yield name


@pytest.fixture
def conn(postgres: Postgres, seeded: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres.conninfo(seeded), autocommit=True) as connection:
        yield connection


@pytest.fixture
def copy(conn: psycopg.Connection) -> Iterator[str]:
    schema = f"restore_{uuid.uuid4().hex[:8]}"
    try:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        for table in (*ALL_TABLES, "schema_migrations"):
            conn.execute(
                sql.SQL("CREATE TABLE {}.{} AS TABLE public.{}").format(
                    sql.Identifier(schema), sql.Identifier(table), sql.Identifier(table)
                )
            )
        yield schema
    finally:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _since(conn: psycopg.Connection) -> datetime:
    """A moment after every seeded row: the 'deploy' starts now."""
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    stamp: datetime = row[0]
    newest = conn.execute("SELECT max(greatest(created_at, updated_at)) FROM public.orders").fetchone()
    assert newest is not None and newest[0] < stamp
    return stamp


def _failed(report: InvariantReport) -> dict[str, tuple[str, ...]]:
    return {check.name: check.examples for check in report.checks if not check.passed}


def _new_order(
    conn: psycopg.Connection,
    s: sql.Identifier,
    at: datetime,
    *,
    total: int,
    quantity: int = 2,
    status: str = "placed",
    items: bool = True,
) -> str:
    order_id = str(uuid.uuid4())
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.orders (id, user_id, status, total_cents, created_at, updated_at)"
            " VALUES (%s, 1, %s, %s, %s, %s)"
        ).format(s),
        (order_id, status, total, at, at),
    )
    if items:
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.order_items (order_id, line_no, product_id, quantity, unit_price_cents)"
                " VALUES (%s, 1, 1, %s, 500)"
            ).format(s),
            (order_id, quantity),
        )
    return order_id


def _damage_an_old_order(conn: psycopg.Connection, s: sql.Identifier) -> str:
    """Change an order written before the deploy without touching its timestamps; return its id."""
    placed = sql.SQL("SELECT min(id::text) FROM {}.orders WHERE status = 'placed'").format(s)
    row = conn.execute(placed).fetchone()
    assert row is not None
    conn.execute(sql.SQL("UPDATE {}.orders SET total_cents = total_cents + 1 WHERE id = %s").format(s), row)
    return str(row[0])


def test_an_old_fault_is_left_to_the_full_checks_and_a_new_one_is_found_in_scope(
    conn: psycopg.Connection, copy: str
) -> None:
    s = sql.Identifier(copy)
    since = _since(conn)
    assert run_invariants(conn, copy, since).passed
    old = _damage_an_old_order(conn, s)
    scoped = run_invariants(conn, copy, since)
    assert scoped.passed
    assert scoped.subject.startswith(f"rows written since {since.isoformat()} in schema {copy}")
    assert _failed(run_invariants(conn, copy)) == {"order_total_matches_items": (old,)}
    # An order written since, whose total ignores the quantity (what v2-corrupts-totals does).
    new = _new_order(conn, s, since + timedelta(seconds=1), total=500, quantity=2)
    assert _failed(run_invariants(conn, copy, since)) == {"order_total_matches_items": (new,)}
    assert _failed(run_invariants(conn, copy)) == {"order_total_matches_items": tuple(sorted((old, new)))}


def test_rows_written_since_break_each_rule_they_can_and_are_found(
    conn: psycopg.Connection, copy: str
) -> None:
    s = sql.Identifier(copy)
    since = _since(conn)
    later = since + timedelta(seconds=1)
    without_items = _new_order(conn, s, later, total=0, items=False)
    # An old order paid after the deploy (updated_at moves) without a captured transaction.
    placed = sql.SQL("SELECT min(id::text) FROM {}.orders WHERE status = 'placed'").format(s)
    row = conn.execute(placed).fetchone()
    assert row is not None
    paid = str(row[0])
    conn.execute(
        sql.SQL("UPDATE {}.orders SET status = 'paid', updated_at = %s WHERE id = %s").format(s),
        (later, paid),
    )
    stray = str(uuid.uuid4())
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.transactions (id, order_id, amount_cents, status, created_at)"
            " VALUES (%s, %s, 100, 'captured', %s)"
        ).format(s),
        (stray, str(uuid.uuid4()), later),
    )
    unknown_product = _new_order(conn, s, later, total=1000)
    conn.execute(
        sql.SQL("UPDATE {}.order_items SET product_id = 999999 WHERE order_id = %s").format(s),
        (unknown_product,),
    )
    # Stock is judged on every product, whenever it was written: products record no time.
    conn.execute(sql.SQL("UPDATE {}.products SET stock = -1 WHERE id = 7").format(s))
    assert _failed(run_invariants(conn, copy, since)) == {
        "orders_have_items": (without_items,),
        "paid_orders_have_captured_payment": (paid,),
        "stock_never_negative": ("7",),
        "items_reference_existing_products": (f"{unknown_product}#1",),
        "transactions_reference_existing_orders": (stray,),
    }


def test_a_schema_that_does_not_record_when_rows_were_written_is_judged_in_full(
    conn: psycopg.Connection, copy: str
) -> None:
    s = sql.Identifier(copy)
    since = _since(conn)
    old = _damage_an_old_order(conn, s)
    conn.execute(sql.SQL("ALTER TABLE {}.orders DROP COLUMN updated_at").format(s))
    report = run_invariants(conn, copy, since)
    assert report.subject.startswith(f"schema {copy}")
    assert _failed(report) == {"order_total_matches_items": (old,)}
