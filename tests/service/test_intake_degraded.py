"""Degraded mode of the real order service on PostgreSQL, with its intake queue on moto's server: an order
the database cannot take (fenced, read-only, down, being swapped) is queued and answered 202 with its key;
the toolkit's replay enters it once; an unreachable queue is a 503 and nothing is acknowledged."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import MOTO_PORTS, MotoIntake, free_port
from target_files import one_host_site, write_target_file

from recovery.drivers.aws import AwsDriver
from recovery.drivers.orderservice import call
from recovery.intake.queue import VISIBILITY_SECONDS, IntakeQueue
from recovery.intake.record import IntakeOrder, from_message
from recovery.intake.replay import replay
from recovery.targets.model import AwsEndpoint

PRODUCTS = "INSERT INTO products (sku, name, price_cents, stock) VALUES ('A', 'Apple', 250, 100)"


@pytest.fixture
def shop(postgres, deploy, moto_intake: MotoIntake):  # type: ignore[no-untyped-def]
    """make(**intake options) -> a v1 service on a fresh database with one user and one product."""
    made = []

    def make(*, degraded_mode: bool = True, endpoint_url: str | None = None, db_port: int = 0):  # type: ignore[no-untyped-def]
        db = postgres.create_database("degraded")
        config = moto_intake.service_config(degraded_mode=degraded_mode, endpoint_url=endpoint_url)
        setup = deploy("v1", db, intake=config)
        assert setup.migrate().returncode == 0
        postgres.execute(db, PRODUCTS)
        run = deploy("v1", db, intake=config, db_port=db_port) if db_port else setup
        run.start()
        assert run.wait_listening()
        if not db_port:
            status, user = run.call("POST", "/users", {"email": "ann@shop.example", "name": "Ann"})
            assert status == 201
        run.db = db
        run.product_id = postgres.query(db, "SELECT id FROM products WHERE sku = 'A'")[0][0]
        run.user_id = 1 if db_port else user["id"]
        made.append(run)
        return run

    yield make
    for run in made:
        run.stop()
        postgres.drop_database(run.db)


def end_sessions(postgres) -> None:  # type: ignore[no-untyped-def]
    postgres.execute(
        "postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'orders'"
    )


@pytest.fixture
def fence(postgres) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """fence() keeps the service's role out of the database and ends its sessions (what a rollback
    does); lift() lets it in again, also when the test failed."""

    def up() -> None:
        postgres.execute("postgres", "ALTER ROLE orders NOLOGIN")
        end_sessions(postgres)

    up.lift = lambda: postgres.execute("postgres", "ALTER ROLE orders LOGIN")  # type: ignore[attr-defined]
    try:
        yield up
    finally:
        up.lift()  # type: ignore[attr-defined]


def queue_of(moto_intake: MotoIntake) -> IntakeQueue:
    return IntakeQueue(
        AwsDriver(AwsEndpoint(endpoint_url=moto_intake.endpoint_url)), moto_intake.queue_url, "us-east-1"
    )


def order_body(shop, quantity: int = 2) -> dict:  # type: ignore[no-untyped-def]
    return {
        "order_id": str(uuid.uuid4()),
        "user_id": shop.user_id,
        "items": [{"product_id": shop.product_id, "quantity": quantity}],
    }


def queued(queue: IntakeQueue) -> list[IntakeOrder]:
    """Every order on the queue (received, then made visible again)."""
    found = []
    while batch := queue.receive(limit=10):
        queue.release(batch)
        found.extend(r.order for r in batch if r.order is not None)
        if len(batch) < 10:
            break
    return found


def count_orders(postgres, shop, order_id: str) -> int:  # type: ignore[no-untyped-def]
    return postgres.query(shop.db, "SELECT count(*) FROM orders WHERE id = %s", (order_id,))[0][0]


def get_with_headers(shop, path: str) -> tuple[int, dict, dict]:  # type: ignore[no-untyped-def]
    conn = http.client.HTTPConnection("127.0.0.1", shop.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null"), dict(response.getheaders())
    finally:
        conn.close()


def test_an_order_the_fenced_database_cannot_take_is_queued_answered_202_and_replayed_once(
    shop, fence, postgres, moto_intake
) -> None:  # type: ignore[no-untyped-def]
    run = shop()
    fence()
    body = order_body(run)
    status, answer = run.call("POST", "/orders", body)
    assert status == 202
    assert answer["status"] == "pending"
    assert answer["order_id"] == answer["idempotency_key"] == body["order_id"]
    # A retry of the same key while still fenced is accepted again; the replay enters it once.
    assert run.call("POST", "/orders", body)[0] == 202
    # Reads say they are degraded: the database does not answer them either.
    status, document, _ = get_with_headers(run, f"/orders/{body['order_id']}")
    assert status == 503 and document["degraded"] is True and "accepted as pending" in document["message"]
    assert run.call("GET", "/health")[1]["writes_blocked"] is True

    queue = queue_of(moto_intake)
    messages = queued(queue)
    assert [str(m.order_id) for m in messages] == [body["order_id"]] * 2
    assert messages[0].service_body() == body  # the contract: the toolkit reads what the service wrote
    assert messages[0].channel == "web" and messages[0].reference is None

    fence.lift()
    outcome = replay(queue, lambda doc: call(run.url, "POST", "/orders", doc))
    assert (outcome.created, outcome.present, outcome.stopped) == (1, 1, None)
    assert count_orders(postgres, run, body["order_id"]) == 1
    assert queue.status().waiting == 0
    assert postgres.query(run.db, "SELECT stock FROM products WHERE sku = 'A'")[0][0] == 98


def test_a_read_only_database_queues_orders_and_reads_carry_the_degraded_header(
    shop, postgres, moto_intake
) -> None:  # type: ignore[no-untyped-def]
    run = shop()
    postgres.execute("postgres", f'ALTER DATABASE "{run.db}" SET default_transaction_read_only = on')
    end_sessions(postgres)
    body = order_body(run)
    assert run.call("POST", "/orders", body)[0] == 202
    status, products, headers = get_with_headers(run, "/products")
    assert status == 200 and products["products"]
    assert "X-Order-Service-Degraded" in headers
    assert [str(m.order_id) for m in queued(queue_of(moto_intake))] == [body["order_id"]]
    assert count_orders(postgres, run, body["order_id"]) == 0


def test_a_database_that_is_down_or_being_swapped_queues_orders(shop, postgres, moto_intake) -> None:  # type: ignore[no-untyped-def]
    closed = free_port(MOTO_PORTS)  # nothing listens there: a database that is down
    down = shop(db_port=closed)
    body = order_body(down)
    status, answer = down.call("POST", "/orders", body)
    assert status == 202 and answer["idempotency_key"] == body["order_id"]

    swapped = shop()
    # A swap renames the live database away for a moment: connections to its name fail meanwhile.
    end_sessions(postgres)
    postgres.execute("postgres", f'ALTER DATABASE "{swapped.db}" RENAME TO "{swapped.db}_x"')
    try:
        other = order_body(swapped)
        assert swapped.call("POST", "/orders", other)[0] == 202
    finally:
        postgres.execute("postgres", f'ALTER DATABASE "{swapped.db}_x" RENAME TO "{swapped.db}"')
    ids = sorted(str(m.order_id) for m in queued(queue_of(moto_intake)))
    assert ids == sorted([body["order_id"], other["order_id"]])


def test_an_unreachable_queue_is_a_503_and_nothing_is_acknowledged(
    shop, fence, postgres, moto_intake
) -> None:  # type: ignore[no-untyped-def]
    closed = free_port(MOTO_PORTS)
    run = shop(endpoint_url=f"http://127.0.0.1:{closed}")
    fence()
    body = order_body(run)
    status, answer = run.call("POST", "/orders", body)
    assert status == 503
    assert answer["error"] == "intake_unavailable"
    assert "was not taken" in answer["message"] and "intake queue is unreachable" in answer["message"]
    fence.lift()
    assert queued(queue_of(moto_intake)) == []
    assert count_orders(postgres, run, body["order_id"]) == 0


def test_without_degraded_mode_the_service_refuses_as_before(shop, fence, postgres, moto_intake) -> None:  # type: ignore[no-untyped-def]
    run = shop(degraded_mode=False)
    fence()
    status, answer = run.call("POST", "/orders", order_body(run))
    assert status == 503 and answer["error"] == "unavailable"
    assert run.call("GET", "/health")[1]["degraded_mode"] == "off"
    assert queued(queue_of(moto_intake)) == []


def test_a_replay_killed_mid_way_then_run_again_enters_each_order_exactly_once(
    shop, postgres, moto_intake, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    run = shop()
    queue = queue_of(moto_intake)
    ids = []
    for _ in range(60):
        body = order_body(run, quantity=1)
        ids.append(body["order_id"])
        queue.send(
            from_message(
                json.dumps(
                    {**body, "format": 1, "received_at": "2026-12-06T23:00:00+00:00", "channel": "web"}
                )
            )
        )
    site = one_host_site(tmp_path, "primary", ssh_port=22, service_port=run.port, db_port=postgres.port)
    site["database"].update({"name": run.db, "passfile": str(postgres.passfile)})
    path = write_target_file(
        tmp_path, "shop", site, one_host_site(tmp_path, "standby", ssh_port=22, service_port=1, db_port=1)
    )
    doc = yaml.safe_load(path.read_text())
    doc.update(intake_queue_url=moto_intake.queue_url, aws={"endpoint_url": moto_intake.endpoint_url})
    doc["traffic"]["front_door_url"] = run.url
    path.write_text(yaml.safe_dump(doc))
    replay_command = [str(Path(sys.executable).parent / "recovery"), "intake", "replay", "-t", str(path)]

    def stored() -> int:
        return postgres.query(run.db, "SELECT count(*) FROM orders WHERE id = ANY(%s::uuid[])", (ids,))[0][0]

    first = subprocess.Popen(replay_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while stored() < 15 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    entered = stored()
    assert 15 <= entered < len(ids), "the replay was not killed mid-way"

    # The messages the killed replay had received come back once their visibility timeout ends; a rerun
    # meanwhile takes the others, and one after that the rest (the killed run may have posted a whole
    # batch before its delete: those orders are stored while their messages still wait to come back).
    def queue_drained() -> bool:
        status = queue.status()
        return status.waiting == status.in_flight == 0

    deadline = time.monotonic() + VISIBILITY_SECONDS + 30
    while (stored() < len(ids) or not queue_drained()) and time.monotonic() < deadline:
        again = subprocess.run(replay_command, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        time.sleep(1)
    counts = postgres.query(
        run.db, "SELECT count(*), count(DISTINCT id) FROM orders WHERE id = ANY(%s::uuid[])", (ids,)
    )[0]
    assert counts == (len(ids), len(ids))
    assert postgres.query(run.db, "SELECT stock FROM products WHERE sku = 'A'")[0][0] == 100 - len(ids)
    status = queue.status()
    assert (status.waiting, status.in_flight, status.dead_letters) == (0, 0, 0)
