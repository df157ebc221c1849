"""The business smoke test against the real order service, deployed from its release artifacts by the
`deploy` fixture of tests/service (which stops every service it started, also when a test fails).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql
from worker_ports import ports

from recovery.errors import ExitCode, UsageError, VerificationFailed
from recovery.verify import ensure_passed, run_invariants
from recovery.verify.smoke import STEP_NAMES, smoke_test

if TYPE_CHECKING:  # the fixture's type; conftest is not importable as a module of a package here
    from conftest import Postgres, ServiceRun

Deploy = Callable[[str, str], "ServiceRun"]
CLOSED_PORTS = ports(26200, 26250)  # this module's (per xdist worker): only probed while nothing listens


@pytest.fixture
def database(postgres: Postgres) -> Iterator[str]:
    name = postgres.create_database("verify_smoke")
    try:
        yield name
    finally:
        with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def serve(postgres: Postgres, deploy: Deploy, version: str, database: str) -> ServiceRun:
    run = deploy(version, database)
    migrated = run.migrate()
    assert migrated.returncode == 0, migrated.stderr
    postgres.execute(
        database,
        "INSERT INTO products (sku, name, price_cents, stock) VALUES"
        " ('EMPTY', 'Sold out', 100, 0), ('A', 'Apple', 250, 10), ('B', 'Book', 1999, 3),"
        " ('C', 'Cup', 700, 2)",
    )
    run.start()
    assert run.wait_listening()
    return run


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_smoke_test_passes_on_a_healthy_release(
    postgres: Postgres, deploy: Deploy, database: str, version: str
) -> None:
    run = serve(postgres, deploy, version, database)
    report = smoke_test(run.url)
    assert report.passed, [step.reason for step in report.steps if not step.passed]
    assert [step.name for step in report.steps] == list(STEP_NAMES)
    assert report.not_run == ()
    assert all(step.seconds > 0 for step in report.steps)
    assert report.seconds >= sum(step.seconds for step in report.steps)
    ensure_passed(report)
    # The order was placed, paid and read back through the API, then removed: the books are as before,
    # stock included (2 of product A and 3 of product B were taken, then given back).
    assert "5 units are back" in report.steps[-1].reason
    assert postgres.query(database, "SELECT count(*) FROM orders") == [(0,)]
    assert postgres.query(database, "SELECT count(*) FROM transactions") == [(0,)]
    assert postgres.query(database, "SELECT count(*) FROM events") == [(0,)]
    assert postgres.query(database, "SELECT sku, stock FROM products ORDER BY id") == [
        ("EMPTY", 0),
        ("A", 10),
        ("B", 3),
        ("C", 2),
    ]
    with psycopg.connect(postgres.conninfo(database)) as conn:
        assert run_invariants(conn, "public").passed
    # A second run reuses the smoke user and places a fresh order on the same stock.
    again = smoke_test(run.url)
    assert again.passed and again.order_id != report.order_id
    assert "5 units are back" in again.steps[-1].reason
    assert "exists" in again.steps[2].reason


def test_smoke_test_catches_a_release_that_ignores_quantities(
    postgres: Postgres, deploy: Deploy, database: str
) -> None:
    run = serve(postgres, deploy, "v2-corrupts-totals", database)
    report = smoke_test(run.url)
    assert not report.passed
    assert [step.name for step in report.steps] == list(STEP_NAMES[:4])
    failed = report.steps[-1]
    assert failed.name == "create_order" and not failed.passed
    assert failed.reason == f"the new order's total {250 + 1999} is not its items' sum {2 * 250 + 3 * 1999}"
    assert report.not_run == STEP_NAMES[4:]
    with pytest.raises(VerificationFailed) as raised:
        ensure_passed(report)
    assert raised.value.exit_code == ExitCode.VERIFY_FAILED
    assert str(raised.value) == (
        f"verification of the order service at {run.url} failed: create_order found 1 problem: "
        f"{failed.reason}"
    )
    # A smoke test that stops early still takes its order out of the books, stock given back.
    assert postgres.query(database, "SELECT count(*) FROM orders") == [(0,)]
    assert postgres.query(database, "SELECT sum(stock) FROM products") == [(15,)]
    with psycopg.connect(postgres.conninfo(database)) as conn:
        assert run_invariants(conn, "public").passed


def test_smoke_test_reports_an_unhealthy_service(postgres: Postgres, deploy: Deploy, database: str) -> None:
    run = serve(postgres, deploy, "v2-unhealthy", database)
    report = smoke_test(run.url)
    assert [(step.name, step.passed) for step in report.steps] == [("health", False)]
    assert report.steps[0].reason.startswith("GET /health answered 503, expected 200")
    assert report.not_run == STEP_NAMES[1:]
    assert postgres.query(database, "SELECT count(*) FROM orders") == [(0,)]  # nothing was ordered


def closed_port() -> int:
    for port in CLOSED_PORTS:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise AssertionError(f"every port of {CLOSED_PORTS.start}-{CLOSED_PORTS.stop - 1} is in use")


def test_smoke_test_reports_a_service_that_does_not_answer() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    report = smoke_test(url, timeout=2)
    assert not report.passed
    assert report.steps[0].name == "health"
    assert "did not get an answer" in report.steps[0].reason
    assert len(report.steps) == 1 and len(report.not_run) == len(STEP_NAMES) - 1
    with pytest.raises(VerificationFailed, match=r"failed: health found 1 problem: GET /health did not get"):
        ensure_passed(report)


def test_smoke_test_with_an_unknown_user_fails_at_find_user(
    postgres: Postgres, deploy: Deploy, database: str
) -> None:
    run = serve(postgres, deploy, "v1", database)
    report = smoke_test(run.url, user_id=424242)
    assert [step.name for step in report.steps][-1] == "find_user"
    assert (
        report.steps[-1].reason == "GET /users/424242 answered 404, expected 200: user 424242 does not exist"
    )


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "file:///etc/passwd", "ftp://127.0.0.1/", "http://"])
def test_a_bad_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError, match="give http://HOST:PORT of the order service") as raised:
        smoke_test(url)
    assert raised.value.exit_code == ExitCode.USAGE


def test_report_ids_are_fresh_uuids() -> None:
    report = smoke_test(f"http://127.0.0.1:{closed_port()}", timeout=1)
    assert uuid.UUID(report.order_id).version == 4
