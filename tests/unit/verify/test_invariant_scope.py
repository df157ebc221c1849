"""The invariants' queries in both scopes: every row, or the rows written since the deploy started."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recovery.errors import UsageError
from recovery.release.gates import SCOPE_MARGIN, invariants_since
from recovery.verify.columns import ColumnNames
from recovery.verify.invariants import INVARIANTS, can_scope, invariant_query, sources

NAMES = ColumnNames()
SINCE = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
AT = "'2026-11-26 02:00:00+00:00'::timestamptz"
RECENT_ORDERS = f'(SELECT * FROM "s"."orders" WHERE "created_at" >= {AT} OR "updated_at" >= {AT})'
RECENT_IDS = f'SELECT "id" FROM "s"."orders" WHERE "created_at" >= {AT} OR "updated_at" >= {AT}'


def query(name: str, since: datetime | None) -> str:
    (invariant,) = [i for i in INVARIANTS if i.name == name]
    return invariant_query(invariant, "s", NAMES, since).as_string(None)


def test_the_full_scope_reads_every_table_whole() -> None:
    for invariant in INVARIANTS:
        text = query(invariant.name, None)
        assert "created_at" not in text and "updated_at" not in text and "(SELECT *" not in text
    assert 'FROM "s"."orders" o WHERE NOT EXISTS (SELECT 1 FROM "s"."order_items" i' in query(
        "orders_have_items", None
    )


def test_orders_are_judged_when_created_or_updated_since_and_references_are_looked_up_whole() -> None:
    have_items = query("orders_have_items", SINCE)
    assert f'FROM {RECENT_ORDERS} o WHERE NOT EXISTS (SELECT 1 FROM "s"."order_items" i' in have_items
    paid = query("paid_orders_have_captured_payment", SINCE)
    assert f"FROM {RECENT_ORDERS} o WHERE o.\"status\" = 'paid'" in paid
    assert 'SELECT 1 FROM "s"."transactions" t WHERE' in paid  # a capture may predate the scope


def test_totals_sum_only_the_items_of_the_judged_orders() -> None:
    totals = query("order_total_matches_items", SINCE)
    assert f"FROM {RECENT_ORDERS} o JOIN (" in totals
    assert f'FROM (SELECT * FROM "s"."order_items" WHERE "order_id" IN ({RECENT_IDS})) i GROUP BY' in totals


def test_new_items_and_transactions_are_judged_against_whole_products_and_orders() -> None:
    items = query("items_reference_existing_products", SINCE)
    assert f'FROM (SELECT * FROM "s"."order_items" WHERE "order_id" IN ({RECENT_IDS})) i' in items
    assert 'SELECT 1 FROM "s"."products" p' in items
    transactions = query("transactions_reference_existing_orders", SINCE)
    assert f'FROM (SELECT * FROM "s"."transactions" WHERE "created_at" >= {AT}) t' in transactions
    assert 'SELECT 1 FROM "s"."orders" o WHERE' in transactions


def test_stock_is_judged_on_every_product_in_both_scopes() -> None:
    assert query("stock_never_negative", SINCE) == query("stock_never_negative", None)


def test_every_query_counts_and_lists_the_first_keys() -> None:
    for invariant in INVARIANTS:
        text = query(invariant.name, SINCE)
        assert text.startswith("WITH violating AS MATERIALIZED (")
        assert text.endswith("FROM violating ORDER BY key LIMIT 5")


def test_a_scope_without_a_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sources("s", NAMES, datetime(2026, 11, 26, 2, 0))  # naive: the point of the test


def test_only_tables_that_record_when_rows_were_written_can_be_scoped() -> None:
    full = {
        "orders": frozenset({"id", "created_at", "updated_at"}),
        "transactions": frozenset({"created_at"}),
    }
    assert can_scope(full)
    assert not can_scope({**full, "orders": frozenset({"id", "created_at"})})
    assert not can_scope({**full, "transactions": frozenset({"id"})})
    assert not can_scope({})


def test_the_gates_judge_rows_from_a_margin_before_the_deploy_started() -> None:
    assert invariants_since(None) is None
    assert invariants_since(SINCE) == SINCE - SCOPE_MARGIN
    assert timedelta(seconds=30) <= SCOPE_MARGIN  # clocks and transactions that began before the deploy
    with pytest.raises(UsageError, match="time zone"):
        invariants_since(datetime(2026, 11, 26, 2, 0))  # naive: the point of the test
