"""Each faulty v2 release fails in its own real way when deployed on a v1 database with data."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
import uuid

from recovery.lab.seed import seed_lab_data

SYSTEM_PYTHON = "/usr/bin/python3"


def _v1_database(postgres, deploy, prefix: str, orders: int = 3000) -> str:
    db = postgres.create_database(prefix)
    assert deploy("v1", db).migrate().returncode == 0
    seed_lab_data(postgres.conninfo(db, user="orders"), orders=orders, seed=11)
    return db


def _started(run):
    run.start()
    assert run.wait_listening(), run.process.stderr.read().decode()
    return run


def test_bad_migration_dies_half_way_and_leaves_a_half_migrated_database(postgres, deploy):
    db = _v1_database(postgres, deploy, "bad_mig")
    lines = postgres.query(db, "SELECT count(*) FROM order_items")[0][0]
    result = deploy("v2-bad-migration", db).migrate()
    assert result.returncode == 1
    assert "migration 3 (backfill_line_totals) failed" in result.stderr
    assert "order_items_line_total_not_negative" in result.stderr
    report = json.loads(result.stdout)
    assert [m["version"] for m in report["applied"]] == [2] and report["schema_version"] == 2
    # Half-migrated: the rename is in, the backfill stopped part way, 0003 is not recorded.
    assert postgres.query(db, "SELECT max(version) FROM schema_migrations") == [(2,)]
    filled = postgres.query(db, "SELECT count(*) FROM order_items WHERE line_total_cents IS NOT NULL")[0][0]
    assert 0 < filled < lines
    columns = {
        r[0]
        for r in postgres.query(
            db, "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
        )
    }
    assert "full_name" in columns and "name" not in columns
    # Running it again fails the same way: the runbook must restore the database, not retry.
    assert deploy("v2-bad-migration", db).migrate().returncode == 1


def test_good_v2_migrates_the_same_data(postgres, deploy):
    db = _v1_database(postgres, deploy, "good_mig")
    result = deploy("v2", db).migrate()
    assert result.returncode == 0, result.stderr
    assert postgres.query(
        db,
        "SELECT count(*) FROM order_items WHERE line_total_cents IS NULL"
        " OR line_total_cents <> quantity * unit_price_cents",
    ) == [(0,)]


def test_crash_exits_at_start_up(postgres, deploy):
    db = _v1_database(postgres, deploy, "crash", orders=50)
    run = deploy("v2-crash", db)
    assert run.migrate().returncode == 0  # the migrations are fine; the code is not
    run.start()
    assert run.wait_listening(timeout=15) is False
    assert run.process.returncode != 0
    assert "ModuleNotFoundError: No module named 'orderservice.money'" in run.process.stderr.read().decode()


def test_unhealthy_serves_but_health_is_503(postgres, deploy):
    db = _v1_database(postgres, deploy, "unhealthy", orders=50)
    run = deploy("v2-unhealthy", db)
    assert run.migrate().returncode == 0
    _started(run)
    status, health = run.call("GET", "/health")
    assert status == 503 and health["status"] == "unhealthy"
    assert "UndefinedTable" in health["problems"][0]
    assert run.call("GET", "/version")[0] == 200


def test_needs_newer_postgres_fails_at_migration_when_forced(postgres, deploy):
    from recovery.release.catalog import get_release

    assert get_release("v2-needs-newer-postgres").requires.postgres_min_major > postgres.major
    db = _v1_database(postgres, deploy, "newer_pg", orders=50)
    result = deploy("v2-needs-newer-postgres", db).migrate()
    assert result.returncode == 1
    assert "migration 5 (daily_sales_view) failed: SyntaxError" in result.stderr
    assert postgres.query(db, "SELECT max(version) FROM schema_migrations") == [(4,)]


def test_corrupts_totals_is_healthy_but_writes_wrong_totals(postgres, deploy):
    db = _v1_database(postgres, deploy, "corrupt", orders=50)
    run = deploy("v2-corrupts-totals", db)
    assert run.migrate().returncode == 0
    _started(run)
    assert run.call("GET", "/health")[0] == 200
    order_id = str(uuid.uuid4())
    status, _order = run.call(
        "POST", "/orders", {"order_id": order_id, "user_id": 1, "items": [{"product_id": 2, "quantity": 3}]}
    )
    assert status == 201
    stored = postgres.query(
        db,
        "SELECT o.total_cents, sum(i.line_total_cents) FROM orders o"
        " JOIN order_items i ON i.order_id = o.id WHERE o.id = %s GROUP BY o.total_cents",
        (order_id,),
    )
    total, lines = stored[0]
    assert total != lines and lines == 3 * total
    smoke = subprocess.run(
        [SYSTEM_PYTHON, "-m", "orderservice", "smoke", "--url", run.url],
        cwd=run.directory,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert smoke.returncode == 1
    failed = [c for c in json.loads(smoke.stdout)["checks"] if not c["ok"]]
    assert failed[0]["check"] in ("order total", "stored order " + order_id + " total")


def _median_order_latency(run, count: int = 40) -> float:
    timings = []
    for _ in range(count):
        body = {
            "order_id": str(uuid.uuid4()),
            "user_id": 1,
            "items": [
                {"product_id": 2, "quantity": 1},
                {"product_id": 3, "quantity": 1},
                {"product_id": 4, "quantity": 1},
            ],
        }
        started = time.perf_counter()
        status, _ = run.call("POST", "/orders", body)
        timings.append(time.perf_counter() - started)
        assert status == 201
    return statistics.median(timings)


def test_slow_is_measurably_slower_than_v2(postgres, deploy):
    db_fast = _v1_database(postgres, deploy, "fast", orders=20000)
    db_slow = _v1_database(postgres, deploy, "slow", orders=20000)
    fast = deploy("v2", db_fast)
    slow = deploy("v2-slow", db_slow)
    assert fast.migrate().returncode == 0 and slow.migrate().returncode == 0
    _started(fast)
    _started(slow)
    fast_median = _median_order_latency(fast)
    slow_median = _median_order_latency(slow)
    print(f"POST /orders median: v2 {fast_median * 1000:.1f} ms, v2-slow {slow_median * 1000:.1f} ms")
    assert slow_median > 2 * fast_median
