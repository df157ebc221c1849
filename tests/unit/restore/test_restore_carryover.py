"""Which orders the carry-over writes and which it leaves for a person (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from recovery.restore.carryover import ItemRow, OrderRow, split_orders

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def _order(order_id: str, total: int) -> OrderRow:
    return OrderRow(order_id, 1, "placed", total, NOW, NOW)


def test_orders_whose_total_matches_their_lines_are_carried() -> None:
    orders = [_order("a", 700), _order("b", 300)]
    items = [ItemRow("a", 1, 1, 2, 200), ItemRow("a", 2, 2, 1, 300), ItemRow("b", 1, 1, 3, 100)]
    good, damaged = split_orders(orders, items)
    assert [o.id for o in good] == ["a", "b"] and damaged == ()


def test_a_total_below_its_lines_is_left_for_a_person() -> None:
    # What v2-corrupts-totals writes: each line charged once whatever its quantity.
    orders = [_order("ok", 100), _order("bad", 200)]
    items = [ItemRow("ok", 1, 1, 1, 100), ItemRow("bad", 1, 1, 3, 200)]
    good, damaged = split_orders(orders, items)
    assert [o.id for o in good] == ["ok"]
    assert [(o.id, lines, reason) for o, lines, reason in damaged] == [
        ("bad", 600, "total 200 does not match its lines (600)")
    ]


def test_an_order_without_lines_is_left_for_a_person() -> None:
    good, damaged = split_orders([_order("cut", 100)], [])
    assert good == () and damaged[0][2] == "the order has no lines"
