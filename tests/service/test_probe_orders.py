"""The toolkit's probe orders (gates' latency probes, the smoke test) leave no trace in the shop's books:
against the real service (v1 and v2) over a real PostgreSQL."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from recovery.load.generator import LOAD_USER_EMAIL
from recovery.release.gates import OrderProbe
from recovery.release.probe_orders import sweep_probe_orders
from recovery.verify.invariants import run_invariants
from recovery.verify.smoke import smoke_test

BOOKS = (
    "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM order_items),"
    " (SELECT count(*) FROM transactions), (SELECT count(*) FROM events), (SELECT sum(stock) FROM products)"
)
PROBE_ORDERS = (
    "SELECT count(*) FROM orders o JOIN users u ON u.id = o.user_id"
    " WHERE u.email LIKE '%%@order-recovery.invalid'"
)


PRODUCT_STOCK = 50  # of each of twenty products: every probe finds stock


@pytest.fixture(params=["v1", "v2"])
def service(request, serve_release):
    products = "INSERT INTO products (sku, name, price_cents, stock) SELECT 'P' || n, 'P' || n, 100 * n"
    rows = f"{products}, {PRODUCT_STOCK} FROM generate_series(1, 20) n"
    return serve_release(request.param, "probes", rows)


def _customer_order(service) -> str:
    status, user = service.call("POST", "/users", {"email": "ada@shop.example", "name": "Ada"})
    assert status in (200, 201)
    order_id = str(uuid.uuid4())
    body = {"order_id": order_id, "user_id": user["id"], "items": [{"product_id": 3, "quantity": 2}]}
    assert service.call("POST", "/orders", body)[0] == 201
    return order_id


def test_the_smoke_test_leaves_no_order_stock_payment_or_event(service, postgres):
    _customer_order(service)
    before = postgres.query(service.db, BOOKS)
    report = smoke_test(service.url)
    assert report.passed, report.steps
    assert report.steps[-1].name == "remove_order"
    assert postgres.query(service.db, BOOKS) == before
    assert postgres.query(service.db, PROBE_ORDERS) == [(0,)]


def test_the_gates_latency_probes_leave_no_order_behind(service, postgres):
    before = postgres.query(service.db, BOOKS)
    probe = OrderProbe(service.url)
    results = [probe.one() for _ in range(3)]
    assert all(r.ok for r in results), results
    assert postgres.query(service.db, BOOKS) == before
    assert postgres.query(service.db, PROBE_ORDERS) == [(0,)]


def test_a_customers_order_cannot_be_removed(service, postgres):
    order_id = _customer_order(service)
    status, doc = service.call("DELETE", f"/orders/{order_id}")
    assert status == 409 and "customer" in doc["message"]
    assert postgres.query(service.db, "SELECT count(*) FROM orders WHERE id = %s", (order_id,)) == [(1,)]


def test_the_sweep_removes_probe_orders_left_behind_and_the_invariants_hold(service, postgres):
    customer = _customer_order(service)
    # The load generator's user shares the reserved domain: its orders are a drill's and must stay.
    status, loader = service.call("POST", "/users", {"email": LOAD_USER_EMAIL, "name": "load"})
    load_order = str(uuid.uuid4())
    items = [{"product_id": 5, "quantity": 1}]
    assert (
        service.call("POST", "/orders", {"order_id": load_order, "user_id": loader["id"], "items": items})[0]
        == 201
    )
    before = postgres.query(service.db, BOOKS)
    status, user = service.call(
        "POST", "/users", {"email": "gate-probe@order-recovery.invalid", "name": "probe"}
    )
    assert status in (200, 201)
    left = []
    for product in (1, 2, 3):
        order_id = str(uuid.uuid4())
        items = [{"product_id": product, "quantity": 2}, {"product_id": 4, "quantity": 1}]
        assert (
            service.call("POST", "/orders", {"order_id": order_id, "user_id": user["id"], "items": items})[0]
            == 201
        )
        left.append(order_id)
    assert service.call("POST", f"/orders/{left[0]}/pay")[0] == 201
    with psycopg.connect(postgres.conninfo(service.db), autocommit=True) as conn:
        swept = sweep_probe_orders(conn)
        assert run_invariants(conn, "public").passed
    assert (swept.orders, swept.stock_returned, swept.payments, swept.events) == (3, 9, 1, 4)
    assert postgres.query(service.db, BOOKS) == before
    kept = "SELECT count(*) FROM orders WHERE id = ANY(%s::uuid[])"
    assert postgres.query(service.db, kept, ([customer, load_order],)) == [(2,)]
