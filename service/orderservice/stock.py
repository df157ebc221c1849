"""Stock reservation inside the order's transaction: decrement or refuse, never go below zero."""

from __future__ import annotations

from typing import Any

from orderservice.errors import NotFound, OutOfStock


def reserve(cur: Any, quantities: dict[int, int]) -> dict[int, int]:
    """Take `quantities` (product id -> units) from stock and return each product's unit price.

    Products are locked in id order so two orders for the same products cannot deadlock.
    """
    prices: dict[int, int] = {}
    for product_id in sorted(quantities):
        wanted = quantities[product_id]
        cur.execute(
            "UPDATE products SET stock = stock - %s WHERE id = %s AND stock >= %s RETURNING price_cents",
            (wanted, product_id, wanted),
        )
        row = cur.fetchone()
        if row is None:
            cur.execute("SELECT stock FROM products WHERE id = %s", (product_id,))
            have = cur.fetchone()
            if have is None:
                raise NotFound(f"product {product_id} does not exist")
            raise OutOfStock(f"product {product_id} has {have[0]} in stock, {wanted} wanted")
        prices[product_id] = int(row[0])
    return prices
