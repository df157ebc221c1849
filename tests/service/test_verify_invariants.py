"""Business invariants against the real PostgreSQL of tests/service, on data seeded by the lab's seeder.

Faults are planted by SQL in a restored copy (`CREATE TABLE ... AS` in a scratch schema, which like a
partial restore has no foreign keys or check constraints); each planted fault must be found by its own
check and by no other. Every schema and database a test creates is dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql

from recovery.errors import ExitCode, VerificationFailed
from recovery.lab.seed import seed_lab_data
from recovery.verify import ALL_TABLES, INVARIANT_NAMES, ensure_passed, run_invariants
from recovery.verify.columns import COLUMNS_BY_VERSION, ColumnNames, choose_columns
from recovery.verify.invariants import CheckObservation, decide_invariants

if TYPE_CHECKING:  # the fixture's type; conftest is not importable as a module of a package here
    from conftest import Postgres

ORDERS = 1500
STRANGER = "ffffffff-0000-4000-8000-000000000001"  # an id no seeded row has


@pytest.fixture(scope="module")
def seeded(postgres: Postgres) -> Iterator[str]:
    """A database with the v1 schema (from the service's migration) and a seeded order history."""
    with postgres.seeded_database("verify_inv", ORDERS) as name:
        yield name


@pytest.fixture
def conn(postgres: Postgres, seeded: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres.conninfo(seeded), autocommit=True) as connection:
        yield connection


def copy_into_schema(conn: psycopg.Connection, schema: str, *, with_migrations: bool = True) -> None:
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    for table in (*ALL_TABLES, "schema_migrations") if with_migrations else ALL_TABLES:
        conn.execute(
            sql.SQL("CREATE TABLE {}.{} AS TABLE public.{}").format(
                sql.Identifier(schema), sql.Identifier(table), sql.Identifier(table)
            )
        )


@pytest.fixture
def copy_schema(conn: psycopg.Connection) -> Iterator[str]:
    schema = f"restore_{uuid.uuid4().hex[:8]}"
    try:
        copy_into_schema(conn, schema)
        yield schema
    finally:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_seeded_history_passes_every_invariant(conn: psycopg.Connection) -> None:
    report = run_invariants(conn, "public")
    assert report.passed, [check.reason for check in report.checks if not check.passed]
    assert report.schema_version == 1
    assert [check.name for check in report.checks] == list(INVARIANT_NAMES)
    assert all(check.violations == 0 and check.examples == () for check in report.checks)
    ensure_passed(report)


# Each plant breaks one rule in the copy and returns the key the check must name among its examples.
def plant_order_without_items(conn: psycopg.Connection, s: sql.Identifier) -> str:
    (order_id,) = conn.execute(sql.SQL("SELECT min(order_id::text) FROM {}.order_items").format(s)).fetchone()
    conn.execute(sql.SQL("DELETE FROM {}.order_items WHERE order_id = %s").format(s), (order_id,))
    return str(order_id)


def plant_wrong_total(conn: psycopg.Connection, s: sql.Identifier) -> str:
    (order_id,) = conn.execute(
        sql.SQL("SELECT min(id::text) FROM {}.orders WHERE status = 'placed'").format(s)
    ).fetchone()
    conn.execute(
        sql.SQL("UPDATE {}.orders SET total_cents = total_cents + 1 WHERE id = %s").format(s), (order_id,)
    )
    return str(order_id)


def plant_lost_payment(conn: psycopg.Connection, s: sql.Identifier) -> str:
    (order_id,) = conn.execute(
        sql.SQL("SELECT min(order_id::text) FROM {}.transactions").format(s)
    ).fetchone()
    conn.execute(sql.SQL("DELETE FROM {}.transactions WHERE order_id = %s").format(s), (order_id,))
    return str(order_id)


def plant_negative_stock(conn: psycopg.Connection, s: sql.Identifier) -> str:
    conn.execute(sql.SQL("UPDATE {}.products SET stock = -1 WHERE id = 5").format(s))
    return "5"


def plant_item_of_unknown_product(conn: psycopg.Connection, s: sql.Identifier) -> str:
    order_id, line_no = conn.execute(
        sql.SQL("SELECT order_id::text, line_no FROM {}.order_items ORDER BY 1, 2 LIMIT 1").format(s)
    ).fetchone()
    conn.execute(
        sql.SQL("UPDATE {}.order_items SET product_id = 999999 WHERE order_id = %s AND line_no = %s").format(
            s
        ),
        (order_id, line_no),
    )
    return f"{order_id}#{line_no}"


def plant_payment_of_unknown_order(conn: psycopg.Connection, s: sql.Identifier) -> str:
    transaction_id = str(uuid.uuid4())
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.transactions (id, order_id, amount_cents, status, created_at)"
            " VALUES (%s, %s, 100, 'captured', now())"
        ).format(s),
        (transaction_id, STRANGER),
    )
    return transaction_id


PLANTS = {
    "orders_have_items": plant_order_without_items,
    "order_total_matches_items": plant_wrong_total,
    "paid_orders_have_captured_payment": plant_lost_payment,
    "stock_never_negative": plant_negative_stock,
    "items_reference_existing_products": plant_item_of_unknown_product,
    "transactions_reference_existing_orders": plant_payment_of_unknown_order,
}


def test_every_invariant_has_a_planted_fault() -> None:
    assert set(PLANTS) == set(INVARIANT_NAMES)


@pytest.mark.parametrize("check_name", list(PLANTS))
def test_each_invariant_detects_its_own_planted_fault_and_only_it(
    conn: psycopg.Connection, copy_schema: str, check_name: str
) -> None:
    assert run_invariants(conn, copy_schema).passed  # the copy starts clean
    key = PLANTS[check_name](conn, sql.Identifier(copy_schema))
    report = run_invariants(conn, copy_schema)
    failed = [check for check in report.checks if not check.passed]
    assert [check.name for check in failed] == [check_name]
    assert failed[0].violations == 1
    assert failed[0].examples == (key,)
    assert failed[0].reason.startswith("1 ")
    assert key in failed[0].reason
    with pytest.raises(VerificationFailed) as raised:
        ensure_passed(report)
    assert raised.value.exit_code == ExitCode.VERIFY_FAILED
    assert f"failed: {check_name} found 1 problem: " in str(raised.value)
    assert "\n" not in str(raised.value)


def test_violations_are_counted_in_full_with_five_examples_in_key_order(
    conn: psycopg.Connection, copy_schema: str
) -> None:
    schema = sql.Identifier(copy_schema)
    conn.execute(
        sql.SQL("UPDATE {}.products SET stock = -stock - 1 WHERE id BETWEEN 2 AND 13").format(schema)
    )
    report = run_invariants(conn, copy_schema)
    (stock,) = [check for check in report.checks if check.name == "stock_never_negative"]
    assert stock.violations == 12
    assert stock.examples == ("10", "11", "12", "13", "2")  # keys are compared as text
    assert stock.reason.startswith("12 products break the rule that no product has negative stock")


def test_a_copy_without_schema_migrations_is_matched_by_its_columns(conn: psycopg.Connection) -> None:
    schema = f"restore_{uuid.uuid4().hex[:8]}"
    try:
        copy_into_schema(conn, schema, with_migrations=False)
        report = run_invariants(conn, schema)
        assert report.passed and report.schema_version is None
        conn.execute(
            sql.SQL("ALTER TABLE {}.orders RENAME COLUMN total_cents TO amount").format(
                sql.Identifier(schema)
            )
        )
        with pytest.raises(VerificationFailed, match=r"missing for version 1: orders\.total_cents") as raised:
            run_invariants(conn, schema)
        assert raised.value.code == "verify.schema_unknown"
    finally:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_a_missing_table_fails_with_one_line(conn: psycopg.Connection, copy_schema: str) -> None:
    conn.execute(sql.SQL("DROP TABLE {}.transactions").format(sql.Identifier(copy_schema)))
    with pytest.raises(VerificationFailed, match=f"schema '{copy_schema}' lacks table transactions"):
        run_invariants(conn, copy_schema)


def test_v2_schema_passes_and_still_detects_a_wrong_total(postgres: Postgres, deploy) -> None:
    name = postgres.create_database("verify_inv_v2")
    try:
        migrated = deploy("v2", name).migrate()
        assert migrated.returncode == 0, migrated.stderr
        seed_lab_data(postgres.conninfo(name, user="orders"), orders=300, seed=3)
        with psycopg.connect(postgres.conninfo(name), autocommit=True) as conn:
            columns = [
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
                ).fetchall()
            ]
            assert "full_name" in columns and "name" not in columns
            report = run_invariants(conn, "public")
            assert report.passed, [check.reason for check in report.checks if not check.passed]
            assert report.schema_version == 4
            # v2's constraints keep line totals honest, but not an order's total: corrupt one.
            (order_id,) = conn.execute("SELECT min(id::text) FROM orders WHERE status = 'placed'").fetchone()
            conn.execute("UPDATE orders SET total_cents = total_cents * 2 + 1 WHERE id = %s", (order_id,))
            failed = [check for check in run_invariants(conn, "public").checks if not check.passed]
            assert [(check.name, check.examples) for check in failed] == [
                ("order_total_matches_items", (order_id,))
            ]
    finally:
        postgres.drop_database(name)


# --- pure decisions ----------------------------------------------------------------------------------


def test_decision_fails_when_a_check_did_not_run_and_passes_only_on_zero_everywhere() -> None:
    clean = [CheckObservation(name=name, violations=0) for name in INVARIANT_NAMES]
    assert decide_invariants("schema s", 1, clean).passed
    partial = decide_invariants("schema s", 1, clean[1:])
    assert not partial.passed
    assert (
        partial.checks[0].reason
        == "the check that every order has at least one item did not run; rerun the verification"
    )
    broken = decide_invariants(
        "schema s",
        1,
        [
            *clean[:3],
            CheckObservation(name="stock_never_negative", violations=2, examples=("4", "9")),
            *clean[4:],
        ],
    )
    assert not broken.passed
    assert broken.checks[3].reason == (
        "2 products break the rule that no product has negative stock (e.g. 4, 9): "
        "more was sold than was in stock"
    )


def test_columns_are_chosen_by_version_or_by_what_exists() -> None:
    v1 = COLUMNS_BY_VERSION[1]
    present = {table: frozenset(columns) for table, columns in v1.required().items()}
    assert choose_columns(1, present) == (1, v1)
    assert choose_columns(4, present) == (1, v1)  # v2 keeps every column the checks read
    assert choose_columns(None, present) == (1, v1)
    assert choose_columns(0, present) == "schema version 0 is older than any version the checks know (1)"
    without_stock = {**present, "products": frozenset({"id"})}
    assert choose_columns(4, without_stock) == (
        "schema version 4 should have columns products.stock but they are missing: the data is damaged or "
        "was restored from another release"
    )
    assert isinstance(choose_columns(None, without_stock), str)
    renamed = ColumnNames(order_total="amount_cents")
    assert renamed.required()["orders"] == frozenset({"id", "status", "amount_cents"})
