"""How much an order costs, in the order's currency."""

from __future__ import annotations

from orderservice.money import Money


def line_total_cents(quantity: int, unit_price_cents: int) -> int:
    return Money(quantity * unit_price_cents).cents


def order_total_cents(lines: list[tuple[int, int]]) -> int:
    """Total of (quantity, unit_price_cents) lines."""
    return sum(line_total_cents(quantity, price) for quantity, price in lines)
