"""How much an order costs: the sum of its lines."""

from __future__ import annotations


def line_total_cents(quantity: int, unit_price_cents: int) -> int:
    return quantity * unit_price_cents


def order_total_cents(lines: list[tuple[int, int]]) -> int:
    """Total of (quantity, unit_price_cents) lines."""
    return sum(price for _quantity, price in lines)
