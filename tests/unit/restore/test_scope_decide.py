"""The pure parts of a restore's scope: the domain graph from foreign keys, the decision and its reason
sentences (verbatim: operators and scripts read them), the cut of a chosen backup and the sentence
saying what happens to rows written after it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from catalog_builders import entry

from recovery.backup.manifest import TableSummary
from recovery.drivers.db import ForeignKeyInfo
from recovery.errors import ExitCode, UsageError
from recovery.restore.choose import cut_of
from recovery.restore.scope import (
    AfterCut,
    Cut,
    Orphans,
    after_cut_sentence,
    decide_scope,
    domain_graph,
    needed_scope,
    newness,
)
from recovery.restore.selection import DomainChoice
from recovery.runbooks.restore import restore_params

# The foreign keys of release v1 (service/orderservice/migrations), as pg_catalog lists them.
V1_KEYS = (
    ForeignKeyInfo("order_items_order_id_fkey", "order_items", ("order_id",), "orders", ("id",)),
    ForeignKeyInfo("order_items_product_id_fkey", "order_items", ("product_id",), "products", ("id",)),
    ForeignKeyInfo("orders_user_id_fkey", "orders", ("user_id",), "users", ("id",)),
    ForeignKeyInfo("transactions_order_id_fkey", "transactions", ("order_id",), "orders", ("id",)),
)
CUT = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def payments(rows: int) -> Orphans:
    return Orphans("orders", "transactions", "transactions", "orders", "transactions_order_id_fkey", rows)


def test_the_graph_knows_which_domain_depends_on_which() -> None:
    graph = domain_graph(V1_KEYS)
    assert graph.dependants("orders") == ("transactions",)
    assert graph.dependants("users") == ("orders",)
    assert graph.dependants("products") == ("orders",)
    assert graph.dependants("transactions") == ()
    assert graph.dependants("logs") == ()
    # An order line references its order inside one domain: restored together, never an edge.
    assert "order_items_order_id_fkey" not in {key.name for key in graph.references}


def test_nothing_newer_referenced_restores_as_asked() -> None:
    decision = decide_scope(["orders"], [payments(0)], "strict")
    assert decision.action == "as-asked"
    assert decision.domains == ("orders",)
    assert decision.reason == (
        "no row of another domain references rows newer than the backup of orders: restoring orders as asked"
    )


def test_strict_refuses_with_the_rows_and_the_scope_that_works() -> None:
    decision = decide_scope(["orders"], [payments(8)], "strict")
    assert decision.action == "refuse"
    assert decision.domains == ("orders", "transactions")
    assert decision.reason == (
        "restoring orders without transactions would orphan 8 rows of transactions "
        "(transactions_order_id_fkey: they reference orders newer than the orders backup); "
        "restore --domains orders,transactions instead, or pass --scope widen; nothing was changed"
    )


def test_widen_adds_the_dependants_and_says_why() -> None:
    decision = decide_scope(["orders"], [payments(1)], "widen")
    assert decision.action == "widen"
    assert decision.domains == ("orders", "transactions")
    assert decision.reason == (
        "restoring orders without transactions would orphan 1 row of transactions "
        "(transactions_order_id_fkey: they reference orders newer than the orders backup): "
        "widened the scope to orders, transactions"
    )
    assert decision.to_json()["orphans"] == [
        {
            "restored": "orders",
            "dependant": "transactions",
            "table": "transactions",
            "referenced": "orders",
            "constraint": "transactions_order_id_fkey",
            "rows": 1,
        }
    ]


def test_widening_follows_dependants_of_dependants() -> None:
    """Users restored alone: orders of newer users would be orphaned, and once orders go back too, the
    payments of those orders would be."""
    found = [
        Orphans("users", "orders", "orders", "users", "orders_user_id_fkey", 3),
        payments(5),
    ]
    assert needed_scope(["users"], found) == ("orders", "users", "transactions")
    decision = decide_scope(["users"], found, "strict")
    assert decision.reason == (
        "restoring users without orders, transactions would orphan 3 rows of orders "
        "(orders_user_id_fkey: they reference users newer than the users backup); 5 rows of transactions "
        "(transactions_order_id_fkey: they reference orders newer than the orders backup); "
        "restore --domains orders,users,transactions instead, or pass --scope widen; nothing was changed"
    )


def test_products_without_orders_name_the_order_lines() -> None:
    lines = Orphans("products", "orders", "order_items", "products", "order_items_product_id_fkey", 2)
    decision = decide_scope(["products"], [lines], "strict")
    assert decision.reason == (
        "restoring products without orders would orphan 2 rows of order_items "
        "(order_items_product_id_fkey: they reference products newer than the products backup); "
        "restore --domains orders,products instead, or pass --scope widen; nothing was changed"
    )


def test_a_dependant_already_requested_changes_nothing() -> None:
    decision = decide_scope(["orders", "transactions"], [payments(8)], "strict")
    assert (decision.action, decision.domains) == ("as-asked", ("orders", "transactions"))


def test_how_newer_rows_are_told_apart() -> None:
    times = {"orders": ["created_at", "updated_at"], "events": ["at"], "users": ["created_at"]}
    cut = Cut("products", "20261206-products-daily", CUT, {"products": 1000})
    assert newness("orders", times, V1_KEYS, cut).column == "created_at"
    assert newness("events", times, V1_KEYS, cut).column == "at"
    lines = newness("order_items", times, V1_KEYS, cut)
    assert lines.parent is not None and lines.parent.name == "order_items_order_id_fkey"
    assert lines.parent_column == "created_at"
    products = newness("products", times, V1_KEYS, cut, ["id"])
    assert (products.column, products.parent, products.key, products.rows_at_cut) == (
        None,
        None,
        ("id",),
        1000,
    )
    assert products.known
    unknown = newness("products", times, V1_KEYS, Cut("products", "x", CUT), ["id"])
    assert not unknown.known


def test_the_cut_of_a_daily_backup_is_its_position_and_a_realtime_one_the_time_asked() -> None:
    daily = entry("20261206-products-daily", CUT)
    assert daily.manifest is not None
    host_files = TableSummary(name="file:primary-app", rows=3, content_hash="cd")
    tables = (*daily.manifest.tables, host_files)
    files_manifest = daily.manifest.model_copy(update={"tables": tables})
    with_files = replace(daily, local_manifest=files_manifest, remote_manifest=files_manifest)
    choice = DomainChoice("products", daily.backup_id, "daily", "local", "newest")
    # Host files (the logs domain's) are no table: only tables count as rows at the cut.
    assert cut_of(choice, [with_files], None) == Cut("products", daily.backup_id, CUT, {"products": 10})
    realtime = replace(entry("20261206-orders-realtime", CUT), covered_until=CUT + timedelta(hours=3))
    picked = DomainChoice("orders", realtime.backup_id, "realtime", "local", "newest")
    asked = CUT + timedelta(hours=1)
    assert cut_of(picked, [realtime], asked).at == asked
    assert cut_of(picked, [realtime], None).at == CUT + timedelta(hours=3), "no time: the end of its WAL"


def test_the_sentence_about_rows_written_after_the_moment() -> None:
    found = [AfterCut("orders", "20261206-orders-realtime", CUT, {"orders": 30, "order_items": 45})]
    replaced = "orders_replaced_20261206_ab12"
    assert after_cut_sentence(found, carry=True, to_person=2, replaced=replaced) == (
        "of the rows written after the restore's moment, 75 rows will be carried over from "
        "orders_replaced_20261206_ab12, except 2 orders whose total does not match its lines "
        "(listed for a person) (orders after 2026-12-06T02:00:00Z (20261206-orders-realtime): orders 30, "
        "order_items 45)"
    )
    assert after_cut_sentence(found, carry=False, to_person=2, replaced=replaced) == (
        "of the rows written after the restore's moment, 75 rows will be set aside in "
        "orders_replaced_20261206_ab12, not carried over (orders after 2026-12-06T02:00:00Z "
        "(20261206-orders-realtime): orders 30, order_items 45)"
    )
    products = [AfterCut("products", "20261206-products-daily", CUT, {"products": 1})]
    assert after_cut_sentence([*found, *products], carry=True, to_person=0, replaced=replaced) == (
        "of the rows written after the restore's moment, 75 rows will be carried over from "
        "orders_replaced_20261206_ab12 and 1 row will be set aside in orders_replaced_20261206_ab12, not "
        "carried over (orders after 2026-12-06T02:00:00Z (20261206-orders-realtime): orders 30, "
        "order_items 45; products after 2026-12-06T02:00:00Z (20261206-products-daily): products 1)"
    )
    none = [AfterCut("products", "20261206-products-daily", CUT, {"products": None})]
    assert after_cut_sentence(none, carry=True, to_person=0, replaced=replaced) == (
        "no row that can be told apart was written after the restore's moment "
        "(products after 2026-12-06T02:00:00Z (20261206-products-daily): products unknown)"
    )


def test_a_time_in_the_future_is_bad_input() -> None:
    now = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
    with pytest.raises(UsageError) as refused:
        restore_params(["orders"], at="2026-12-07T01:00:00Z", point=None, restore_id="x", now=now)
    assert refused.value.exit_code == ExitCode.USAGE
    assert refused.value.message == (
        "--at 2026-12-07T01:00:00Z is in the future (it is now 2026-12-06T23:00:00Z); give a time in the past"
    )
    params = restore_params(["orders"], at="2026-12-06T22:00:00Z", point=None, restore_id="x", now=now)
    assert (params["scope"], params["carry_over"]) == ("strict", True)
    with pytest.raises(UsageError, match="unknown --scope 'loose'; use one of strict, widen"):
        restore_params(["orders"], at=None, point=None, restore_id="x", scope="loose")
