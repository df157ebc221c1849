"""The lab seeder against a real PostgreSQL: counts, invariants, sequences, refusal of a used database."""

from __future__ import annotations

import pytest

from recovery.errors import ExternalFailure, PreconditionFailed, UsageError
from recovery.lab.seed import FREE_GIFT_PRODUCT_ID, seed_lab_data

INVARIANTS = {
    "orders without items": "SELECT count(*) FROM orders o WHERE NOT EXISTS"
    " (SELECT 1 FROM order_items i WHERE i.order_id = o.id)",
    "totals not equal to their lines": "SELECT count(*) FROM (SELECT o.id FROM orders o JOIN order_items i"
    " ON i.order_id = o.id GROUP BY o.id, o.total_cents"
    " HAVING o.total_cents <> sum(i.quantity * i.unit_price_cents)) bad",
    "paid orders without one matching capture": "SELECT count(*) FROM orders o WHERE o.status = 'paid' AND"
    " (SELECT count(*) FROM transactions t WHERE t.order_id = o.id"
    " AND t.status = 'captured' AND t.amount_cents = o.total_cents) <> 1",
    "captures of unpaid orders": "SELECT count(*) FROM transactions t JOIN orders o ON o.id = t.order_id"
    " WHERE o.status <> 'paid'",
    "negative stock": "SELECT count(*) FROM products WHERE stock < 0",
    "orders with more than 4 paid-for lines": "SELECT count(*) FROM (SELECT order_id FROM order_items"
    " WHERE unit_price_cents > 0 GROUP BY order_id"
    " HAVING count(*) > 4) many",
}


def _check_invariants(postgres, db: str) -> None:
    for name, sql in INVARIANTS.items():
        assert postgres.query(db, sql) == [(0,)], name


@pytest.mark.parametrize("release", ["v1", "v2"])
def test_seed_counts_invariants_and_sequences(postgres, deploy, release):
    db = postgres.create_database(f"seed_{release}")
    assert deploy(release, db).migrate().returncode == 0
    counts = seed_lab_data(postgres.conninfo(db, user="orders"), orders=5000)
    for table, expected in counts.items():
        assert postgres.query(db, f"SELECT count(*) FROM {table}") == [(expected,)], table
    assert counts["orders"] == 5000 and counts["users"] == 500
    assert 5000 < counts["order_items"] < 5000 * 4 + 200
    assert counts["events"] == counts["orders"] + counts["transactions"]
    _check_invariants(postgres, db)
    # The free-gift promotion starts half-way through the history: no gift in the older half.
    first_gift = postgres.query(
        db,
        "SELECT min(o.created_at), (SELECT min(created_at) FROM orders),"
        " (SELECT max(created_at) FROM orders) FROM orders o JOIN order_items i"
        " ON i.order_id = o.id WHERE i.product_id = %s",
        (FREE_GIFT_PRODUCT_ID,),
    )
    gift_at, oldest, newest = first_gift[0]
    assert gift_at >= oldest + (newest - oldest) * 0.49
    # Sequences advanced: new rows get fresh ids instead of colliding with seeded ones.
    name_column = "name" if release == "v1" else "full_name"
    postgres.execute(db, f"INSERT INTO users (email, {name_column}) VALUES ('new@shop.example', 'New')")
    assert postgres.query(db, "SELECT id FROM users WHERE email = 'new@shop.example'") == [(501,)]
    postgres.execute(db, "INSERT INTO events (kind, subject) VALUES ('test', 'x')")
    assert postgres.query(db, "SELECT max(id) FROM events") == [(counts["events"] + 1,)]
    # Foreign keys and secondary indexes are back after the load, valid and under their own names.
    keys = postgres.query(
        db, "SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f' ORDER BY 1"
    )
    assert keys == [
        ("order_items_order_id_fkey", True),
        ("order_items_product_id_fkey", True),
        ("orders_user_id_fkey", True),
        ("transactions_order_id_fkey", True),
    ]
    indexes = postgres.query(db, "SELECT indexname FROM pg_indexes WHERE indexname LIKE '%%_idx' ORDER BY 1")
    assert indexes == [("orders_user_id_idx",), ("transactions_order_id_idx",)]


def test_seed_is_deterministic(postgres):
    first = postgres.create_database("seed_a")
    second = postgres.create_database("seed_b")
    seed_lab_data(postgres.conninfo(first, user="orders"), orders=300, seed=3)
    seed_lab_data(postgres.conninfo(second, user="orders"), orders=300, seed=3)
    digest = "SELECT md5(string_agg(id::text || total_cents || status, ',' ORDER BY id)) FROM orders"
    assert postgres.query(first, digest) == postgres.query(second, digest)


def test_seed_creates_the_v1_schema_in_an_empty_database(postgres):
    db = postgres.create_database("seed_empty")
    counts = seed_lab_data(postgres.conninfo(db, user="orders"), orders=100)
    assert counts["orders"] == 100
    assert postgres.query(db, "SELECT version, name FROM schema_migrations") == [(1, "initial_schema")]
    _check_invariants(postgres, db)


def test_seed_refuses_a_database_with_orders(postgres):
    db = postgres.create_database("seed_twice")
    seed_lab_data(postgres.conninfo(db, user="orders"), orders=50)
    with pytest.raises(PreconditionFailed, match="already has users or orders"):
        seed_lab_data(postgres.conninfo(db, user="orders"), orders=50)
    assert postgres.query(db, "SELECT count(*) FROM orders") == [(50,)]


def test_seed_rejects_a_bad_order_count(postgres):
    db = postgres.create_database("seed_zero")
    with pytest.raises(UsageError, match="at least 1"):
        seed_lab_data(postgres.conninfo(db, user="orders"), orders=0)


def test_a_failed_load_commits_nothing_and_restores_keys_and_indexes(postgres, deploy):
    db = postgres.create_database("seed_fail")
    assert deploy("v1", db).migrate().returncode == 0
    # A constraint the generated history breaks: the orders stream fails part way through the load.
    postgres.execute(db, "ALTER TABLE orders ADD CONSTRAINT small_orders CHECK (total_cents < 5000)")
    with pytest.raises(ExternalFailure, match="seeding orders failed: CheckViolation"):
        seed_lab_data(postgres.conninfo(db, user="orders"), orders=2000)
    for table in ("users", "products", "orders", "order_items", "transactions", "events"):
        assert postgres.query(db, f"SELECT count(*) FROM {table}") == [(0,)], table
    valid_keys = "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND convalidated"
    assert postgres.query(db, valid_keys) == [(4,)]
    assert postgres.query(db, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE '%%_idx'") == [(2,)]
