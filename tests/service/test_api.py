"""The API of the real service (v1 and v2) over a real PostgreSQL."""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import uuid

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"


PRODUCTS = (
    "INSERT INTO products (sku, name, price_cents, stock) VALUES"
    " ('A', 'Apple', 250, 10), ('B', 'Book', 1999, 3), ('C', 'Cup', 700, 0)"
)


@pytest.fixture(params=["v1", "v2"])
def service(request, serve_release):
    return serve_release(request.param, "api", PRODUCTS)


def _user(service) -> int:
    status, user = service.call("POST", "/users", {"email": "ada@shop.example", "name": "Ada"})
    assert status == 201
    return user["id"]


def test_health_and_version(service):
    status, health = service.call("GET", "/health")
    assert status == 200
    assert health["status"] == "ok" and health["version"] == service.version and health["site"] == "primary"
    assert health["db"] == {
        "reachable": True,
        "read_only": False,
        "schema_version": 1 if service.version == "v1" else 4,
    }
    status, version = service.call("GET", "/version")
    assert status == 200 and version["version"] == service.version


def test_order_is_idempotent_and_takes_stock_once(service, postgres):
    user_id = _user(service)
    order_id = str(uuid.uuid4())
    body = {
        "order_id": order_id,
        "user_id": user_id,
        "items": [{"product_id": 1, "quantity": 3}, {"product_id": 2, "quantity": 1}],
    }
    status, order = service.call("POST", "/orders", body)
    assert status == 201
    assert order["total_cents"] == 3 * 250 + 1999
    assert [i["unit_price_cents"] for i in order["items"]] == [250, 1999]
    status, replay = service.call("POST", "/orders", body)
    assert status == 200 and replay == order
    assert postgres.query(service.db, "SELECT count(*) FROM orders") == [(1,)]
    assert postgres.query(service.db, "SELECT stock FROM products ORDER BY id") == [(7,), (2,), (0,)]
    assert postgres.query(service.db, "SELECT kind FROM events") == [("order.placed",)]


def test_concurrent_replays_create_one_order(service, postgres):
    user_id = _user(service)
    body = {"order_id": str(uuid.uuid4()), "user_id": user_id, "items": [{"product_id": 1, "quantity": 2}]}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: service.call("POST", "/orders", body), range(8)))
    assert sorted(status for status, _ in results) == [200] * 7 + [201]
    assert len({json.dumps(order, sort_keys=True) for _, order in results}) == 1
    assert postgres.query(service.db, "SELECT stock FROM products WHERE sku = 'A'") == [(8,)]


def test_out_of_stock_is_409_and_changes_nothing(service, postgres):
    user_id = _user(service)
    body = {
        "order_id": str(uuid.uuid4()),
        "user_id": user_id,
        "items": [{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": 4}],
    }
    status, error = service.call("POST", "/orders", body)
    assert status == 409 and error["error"] == "out_of_stock"
    assert postgres.query(service.db, "SELECT count(*) FROM orders") == [(0,)]
    assert postgres.query(service.db, "SELECT stock FROM products ORDER BY id") == [(10,), (3,), (0,)]


def test_pay_is_idempotent(service, postgres):
    user_id = _user(service)
    order_id = str(uuid.uuid4())
    service.call(
        "POST",
        "/orders",
        {"order_id": order_id, "user_id": user_id, "items": [{"product_id": 2, "quantity": 2}]},
    )
    status, payment = service.call("POST", f"/orders/{order_id}/pay")
    assert status == 201 and payment["amount_cents"] == 2 * 1999 and payment["status"] == "captured"
    status, again = service.call("POST", f"/orders/{order_id}/pay")
    assert status == 200 and again == payment
    assert postgres.query(service.db, "SELECT count(*), sum(amount_cents) FROM transactions") == [(1, 3998)]
    status, order = service.call("GET", f"/orders/{order_id}")
    assert status == 200 and order["status"] == "paid"


def test_list_orders_pages_by_id(service):
    user_id = _user(service)
    ids = sorted(str(uuid.uuid4()) for _ in range(5))
    for order_id in ids:
        status, _ = service.call(
            "POST",
            "/orders",
            {"order_id": order_id, "user_id": user_id, "items": [{"product_id": 1, "quantity": 1}]},
        )
        assert status == 201
    status, first = service.call("GET", "/orders?limit=3")
    assert status == 200 and [o["id"] for o in first["orders"]] == ids[:3] and first["next"] == ids[2]
    status, second = service.call("GET", f"/orders?limit=3&after={first['next']}")
    assert [o["id"] for o in second["orders"]] == ids[3:] and second["next"] is None
    assert all(len(o["items"]) == 1 for o in first["orders"] + second["orders"])


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/orders/6b1f3c1e-0000-4000-8000-000000000000", None, 404),
        ("POST", "/orders", {"user_id": 1, "items": [{"product_id": 1, "quantity": 1}]}, 400),
        ("POST", "/orders", {"order_id": "nope", "user_id": 1, "items": []}, 400),
        (
            "POST",
            "/orders",
            {"order_id": str(uuid.uuid4()), "user_id": 1, "items": [{"product_id": 1, "quantity": 0}]},
            400,
        ),
        (
            "POST",
            "/orders",
            {"order_id": str(uuid.uuid4()), "user_id": 99, "items": [{"product_id": 1, "quantity": 1}]},
            404,
        ),
        ("GET", "/orders?limit=0", None, 400),
        ("DELETE", "/orders", None, 405),
        ("GET", "/nowhere", None, 404),
    ],
)
def test_bad_requests_get_one_clear_answer(service, method, path, body, expected):
    _user(service)
    status, error = service.call(method, path, body)
    assert status == expected
    assert error["message"]


def test_bad_json_is_400(service):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    conn.request("POST", "/orders", body="{not json", headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 400 and json.loads(response.read())["error"] == "bad_request"
    conn.close()


def test_smoke_check_passes(service):
    result = subprocess.run(
        [SYSTEM_PYTHON, "-m", "orderservice", "smoke", "--url", service.url],
        cwd=service.directory,
        capture_output=True,
        text=True,
        timeout=60,
    )
    report = json.loads(result.stdout)
    assert result.returncode == 0, report
    assert report["ok"] and len(report["checks"]) >= 10


def test_standby_refuses_writes_but_reads(postgres, deploy):
    db = postgres.create_database("api_standby")
    assert deploy("v2", db).migrate().returncode == 0
    postgres.execute(db, f'ALTER DATABASE "{db}" SET default_transaction_read_only = on')
    run = deploy("v2", db, site="standby")
    run.start()
    assert run.wait_listening()
    status, health = run.call("GET", "/health")
    assert status == 200 and health["site"] == "standby" and health["db"]["read_only"] is True
    status, error = run.call("POST", "/users", {"email": "x@shop.example", "name": "X"})
    assert status == 503 and error["error"] == "read_only"
    result = subprocess.run(
        [SYSTEM_PYTHON, "-m", "orderservice", "smoke", "--read-only", "--url", run.url],
        cwd=run.directory,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout


def test_unreachable_database_is_503(deploy):
    run = deploy("v2", "no_such_database")
    run.start()
    assert run.wait_listening()
    status, health = run.call("GET", "/health")
    assert status == 503 and health["db"]["reachable"] is False and health["status"] == "unhealthy"
    status, error = run.call("GET", "/orders")
    assert status == 503 and error["error"] == "unavailable"


def test_orders_keep_working_after_the_database_dropped_every_connection(service, postgres):
    user = _user(service)
    for _ in range(3):  # fill the pool with idle connections
        status, _ = service.call(
            "POST",
            "/orders",
            {"order_id": str(uuid.uuid4()), "user_id": user, "items": [{"product_id": 1, "quantity": 1}]},
        )
        assert status == 201
    # What a PostgreSQL restart does to a pool: every idle backend of the service is gone.
    postgres.execute(
        "postgres",
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        (service.db,),
    )
    for _ in range(3):
        status, body = service.call(
            "POST",
            "/orders",
            {"order_id": str(uuid.uuid4()), "user_id": user, "items": [{"product_id": 1, "quantity": 1}]},
        )
        assert status == 201, body
