"""The scope of a restore against the real PostgreSQL of tests/service: for each domain that others depend
on, a backup is taken, live moves on the way a shop does (rows of the other domains referencing rows newer
than the backup), and the scope step must see it before any work.

For each case the single-domain restore really fails in pg_restore on the foreign key (what an operator
hit before the scope step existed), the scope step counts exactly the rows that break it, refuses with
the scope that works (strict) or widens to it (widen), and the widened restore goes through.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import psycopg
import pytest
from restore_helpers import Backup, first_ids, place_order, restore_copy, take_backup

from recovery.backup.naming import Domain
from recovery.errors import RecoveryError
from recovery.restore.scope import LiveRows, ScopeFindings, find_scope

if TYPE_CHECKING:
    from conftest import Postgres


def scope(
    postgres: Postgres, live: str, backup: Backup, requested: tuple[Domain, ...], policy: str
) -> ScopeFindings:
    with psycopg.connect(postgres.conninfo(live), autocommit=True) as conn:
        return find_scope(
            LiveRows(conn),
            requested,
            lambda domains: {domain: backup.cuts[domain] for domain in domains},
            "widen" if policy == "widen" else "strict",
        )


def fails_on_foreign_key(
    postgres: Postgres, live: str, backup: Backup, domains: tuple[str, ...], key: str
) -> None:
    before = postgres.query(live, "SELECT count(*) FROM orders")
    with pytest.raises(RecoveryError) as failed:
        restore_copy(postgres, live, backup, domains)
    assert failed.value.code == "restore.load_failed" and key in failed.value.message
    assert postgres.query(live, "SELECT count(*) FROM orders") == before, "live is untouched"


def refused_then_widened(
    postgres: Postgres, live: str, backup: Backup, domain: Domain, key: str, reason: str
) -> ScopeFindings:
    """The single-domain restore fails on `key` in pg_restore; the scope step refuses it with `reason`,
    or widens; the widened restore goes through. Returns the widened findings."""
    fails_on_foreign_key(postgres, live, backup, (domain,), key)
    strict = scope(postgres, live, backup, (domain,), "strict")
    assert (strict.decision.action, strict.decision.reason) == ("refuse", reason)
    widened = scope(postgres, live, backup, (domain,), "widen")
    assert widened.decision.action == "widen"
    assert restore_copy(postgres, live, backup, widened.decision.domains)
    return widened


def test_orders_alone_with_payments_for_newer_orders(postgres: Postgres, live: str) -> None:
    backup = take_backup(postgres, live, ("orders", "transactions"))
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        user, product = first_ids(conn)
        for _ in range(3):
            place_order(conn, user, product, paid=True)
        place_order(conn, user, product, paid=False)  # placed, not paid: nothing references it
        old = conn.execute(
            "SELECT id FROM orders WHERE status = 'placed' ORDER BY created_at LIMIT 1"
        ).fetchone()
        assert old is not None
        # A payment for an order the backup has orphans nothing.
        conn.execute(
            "INSERT INTO transactions (id, order_id, amount_cents, status) VALUES (%s, %s, 1, 'captured')",
            (str(uuid.uuid4()), old[0]),
        )
    reason = (
        "restoring orders without transactions would orphan 3 rows of transactions "
        "(transactions_order_id_fkey: they reference orders newer than the orders backup); "
        "restore --domains orders,transactions instead, or pass --scope widen; nothing was changed"
    )
    widened = refused_then_widened(postgres, live, backup, "orders", "transactions_order_id_fkey", reason)
    assert widened.decision.domains == ("orders", "transactions")
    after = {item.domain: dict(item.tables) for item in widened.after}
    assert after == {"orders": {"orders": 4, "order_items": 4}, "transactions": {"transactions": 4}}


def test_users_alone_with_orders_of_newer_users(postgres: Postgres, live: str) -> None:
    backup = take_backup(postgres, live, ("users", "orders", "transactions"))
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        _, product = first_ids(conn)
        row = conn.execute(
            "INSERT INTO users (email, name) VALUES ('new@shop.example', 'New Customer') RETURNING id"
        ).fetchone()
        assert row is not None
        place_order(conn, int(row[0]), product, paid=True)
        place_order(conn, int(row[0]), product, paid=False)
    # The orders of the new user go back too, and with them the payment of one of them.
    reason = (
        "restoring users without orders, transactions would orphan 2 rows of orders "
        "(orders_user_id_fkey: they reference users newer than the users backup); 1 row of transactions "
        "(transactions_order_id_fkey: they reference orders newer than the orders backup); "
        "restore --domains orders,users,transactions instead, or pass --scope widen; nothing was changed"
    )
    widened = refused_then_widened(postgres, live, backup, "users", "orders_user_id_fkey", reason)
    assert widened.decision.domains == ("orders", "users", "transactions")


def test_products_alone_with_order_lines_of_newer_products(postgres: Postgres, live: str) -> None:
    backup = take_backup(postgres, live, ("products", "orders", "transactions"))
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        user, _ = first_ids(conn)
        row = conn.execute(
            "INSERT INTO products (sku, name, price_cents, stock) VALUES ('NEW-1', 'New', 250, 9)"
            " RETURNING id"
        ).fetchone()
        assert row is not None
        place_order(conn, user, int(row[0]), paid=False)
    reason = (
        "restoring products without orders would orphan 1 row of order_items "
        "(order_items_product_id_fkey: they reference products newer than the products backup); "
        "restore --domains orders,products instead, or pass --scope widen; nothing was changed"
    )
    widened = refused_then_widened(postgres, live, backup, "products", "order_items_product_id_fkey", reason)
    assert widened.decision.domains == ("orders", "products")
    # Products carry no creation time: the rows past the backup's count, in key order, are the new ones.
    assert {item.domain: dict(item.tables) for item in widened.after}["products"] == {"products": 1}


def test_nothing_newer_referenced_restores_the_domain_alone(postgres: Postgres, live: str) -> None:
    backup = take_backup(postgres, live, ("orders",))
    with psycopg.connect(postgres.conninfo(live, user="orders")) as conn:
        user, product = first_ids(conn)
        place_order(conn, user, product, paid=False)
        place_order(conn, user, product, paid=False, total=1)  # a total its line does not add up to
    findings = scope(postgres, live, backup, ("orders",), "strict")
    assert findings.decision.action == "as-asked"
    # Two orders and their two lines written after the backup; one of them would go to a person.
    assert findings.after_rows == 4 and findings.to_person == 1
    assert restore_copy(postgres, live, backup, ("orders",))
