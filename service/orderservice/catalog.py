"""Users and products: what orders refer to."""

from __future__ import annotations

from typing import Any

from orderservice import edge, rows
from orderservice.db import Database
from orderservice.errors import BadRequest, NotFound

MAX_EMAIL = 320  # the longest address RFC 5321 allows
MAX_NAME = 200


def create_user(db: Database, body: Any) -> tuple[bool, dict[str, Any]]:
    """Create a user, idempotent on the e-mail address."""
    if not isinstance(body, dict) or not isinstance(body.get("email"), str) or "@" not in body["email"]:
        raise BadRequest("the body must be a JSON object with an email address and a name")
    email = edge.bounded_text(body["email"], "email", MAX_EMAIL)
    name = edge.bounded_text(body.get("name", body.get("full_name")), "name", MAX_NAME)
    with db.transaction() as cur:
        created = rows.insert_user(cur, email, name.strip())
        if created is not None:
            return True, created
        existing = rows.user_by_email(cur, email)
        assert existing is not None
        return False, existing


def get_user(db: Database, user_id: int) -> dict[str, Any]:
    with db.transaction() as cur:
        user = rows.user_by_id(cur, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    return user


def _product(row: tuple) -> dict[str, Any]:
    return {"id": row[0], "sku": row[1], "name": row[2], "price_cents": row[3], "stock": row[4]}


def get_product(db: Database, product_id: int) -> dict[str, Any]:
    with db.transaction() as cur:
        cur.execute("SELECT id, sku, name, price_cents, stock FROM products WHERE id = %s", (product_id,))
        row = cur.fetchone()
    if row is None:
        raise NotFound(f"product {product_id} does not exist")
    return _product(row)


def list_products(db: Database, after: int, limit: int, in_stock: bool) -> dict[str, Any]:
    with db.transaction() as cur:
        cur.execute(
            "SELECT id, sku, name, price_cents, stock FROM products WHERE id > %s"
            + (" AND stock > 0" if in_stock else "")
            + " ORDER BY id LIMIT %s",
            (after, limit),
        )
        page = [_product(r) for r in cur.fetchall()]
    return {"products": page, "next": page[-1]["id"] if len(page) == limit else None}
