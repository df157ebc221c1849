"""Migrations of the real releases against a real PostgreSQL: v1, then v2 with its data migration."""

from __future__ import annotations

import json
import uuid


def _place_v1_data(postgres, db: str) -> list[str]:
    """A few orders with lines written the way release v1 stores them (no line totals)."""
    postgres.execute(
        db,
        "INSERT INTO users (id, email, name) VALUES (1, 'ada@shop.example', 'Ada Lovelace'),"
        " (2, 'alan@shop.example', 'Alan Turing')",
    )
    postgres.execute(
        db,
        "INSERT INTO products (id, sku, name, price_cents, stock) VALUES"
        " (1, 'GIFT', 'Free gift', 0, 100), (2, 'A', 'Apple', 250, 100), (3, 'B', 'Book', 1999, 100)",
    )
    ids = []
    for n in range(3):
        order_id = str(uuid.uuid4())
        ids.append(order_id)
        postgres.execute(
            db,
            "INSERT INTO orders (id, user_id, status, total_cents) VALUES (%s, %s, 'placed', %s)",
            (order_id, 1 + n % 2, 2 * 250 + 1999 * (n + 1)),
        )
        postgres.execute(
            db,
            "INSERT INTO order_items VALUES (%s, 1, 2, 2, 250), (%s, 2, 3, %s, 1999), (%s, 3, 1, 1, 0)",
            (order_id, order_id, n + 1, order_id),
        )
    return ids


def test_v1_creates_the_documented_schema(postgres, deploy):
    db = postgres.create_database("mig_v1")
    run = deploy("v1", db)
    result = run.migrate()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["schema_version"] == 1
    tables = {r[0] for r in postgres.query(db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {
        "users",
        "products",
        "orders",
        "order_items",
        "transactions",
        "events",
        "schema_migrations",
    }
    columns = postgres.query(
        db,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
        " ORDER BY ordinal_position",
    )
    assert [c[0] for c in columns] == ["id", "email", "name", "created_at"]
    again = run.migrate()
    assert again.returncode == 0 and json.loads(again.stdout)["applied"] == []


def test_v2_renames_adds_and_backfills(postgres, deploy):
    db = postgres.create_database("mig_v2")
    assert deploy("v1", db).migrate().returncode == 0
    order_ids = _place_v1_data(postgres, db)
    result = deploy("v2", db).migrate()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [m["version"] for m in report["applied"]] == [2, 3, 4]
    assert postgres.query(db, "SELECT full_name FROM users ORDER BY id") == [
        ("Ada Lovelace",),
        ("Alan Turing",),
    ]
    assert postgres.query(db, "SELECT DISTINCT currency FROM orders") == [("EUR",)]
    lines = postgres.query(
        db,
        "SELECT order_id::text, line_no, quantity, unit_price_cents, line_total_cents"
        " FROM order_items ORDER BY order_id, line_no",
    )
    assert len(lines) == 9 and {str(r[0]) for r in lines} == set(order_ids)
    for _, _, quantity, price, line_total in lines:
        assert line_total == quantity * price
    assert postgres.query(db, "SELECT version FROM schema_migrations ORDER BY version") == [
        (1,),
        (2,),
        (3,),
        (4,),
    ]
    nullable = postgres.query(
        db,
        "SELECT is_nullable FROM information_schema.columns"
        " WHERE table_name = 'order_items' AND column_name = 'line_total_cents'",
    )
    assert nullable == [("NO",)]


def test_v1_code_cannot_run_on_the_v2_schema(postgres, deploy):
    db = postgres.create_database("mig_back")
    assert deploy("v1", db).migrate().returncode == 0
    _place_v1_data(postgres, db)
    assert deploy("v2", db).migrate().returncode == 0
    old = deploy("v1", db)
    old.start()
    assert old.wait_listening()
    status, health = old.call("GET", "/health")
    assert status == 503
    assert "schema is at 4" in health["problems"][0]
    status, _body = old.call("GET", "/users/1")
    assert status == 500  # users.name no longer exists: only a database restore brings v1 back
    assert 'column "name" does not exist' in old.log_file.read_text()
