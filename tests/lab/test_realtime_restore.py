"""`recovery restore --at TIME` with realtime backups, end to end on a real lab.

WAL archiving set up by the role, a realtime base backup in both S3 copies (moto's server), paid orders
placed through the service before and after a noted time, the WAL shipped; then the restore command
recovers the base backup plus WAL into a scratch cluster, dumps orders and transactions from it into the
restore beside live (`FromDatabase`), verifies, fences the service and swaps. Afterwards live holds exactly
the orders committed up to the noted time, the invariants hold, and live's replaced tables (with the later
orders) are kept.

Then `recovery backup prune` removes the superseded realtime backups and the WAL series older than the
oldest kept one, from both copies, journaled, and only with --yes.

Run with RECOVERY_TEST_BASE_PORT set to your own base port. The tests run in file order on one lab.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from recovery.backup.catalog import catalog_for
from recovery.backup.naming import BackupName
from recovery.backup.realtime import (
    coverage,
    realtime_stores,
    ship_wal,
    switch_and_wait_archived,
    take_base_backup,
    wal_archive_extravars,
    wal_series,
)
from recovery.backup.repository import object_key
from recovery.cli.main import main
from recovery.drivers import db
from recovery.drivers.ansible import require_success, run_playbook
from recovery.drivers.orderservice import call
from recovery.engine import journal_path, read_journal
from recovery.errors import ExitCode
from recovery.lab.plan import LabPlan
from recovery.targets.model import Target
from recovery.verify import invariants

pytestmark = pytest.mark.lab

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "wal-archive.yml"
LAB_AWS_ENV = {"AWS_ACCESS_KEY_ID": "lab", "AWS_SECRET_ACCESS_KEY": "lab"}  # moto takes any credentials
_state: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _lab_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LAB_AWS_ENV.items():
        monkeypatch.setenv(name, value)


@dataclass(frozen=True)
class Lab:
    """The shape of the `lab` fixture (tests/lab/conftest.py)."""

    dir: Path
    plan: LabPlan
    target: Target


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    doc = json.loads(out) if out.strip().startswith("{") else None
    return code, doc, err


def _step_output(doc: dict[str, Any], step: str) -> dict[str, Any]:
    run = doc["result"] if "steps" in doc["result"] else doc["result"]["run"]
    found: dict[str, Any] = next(s for s in run["steps"] if s["name"] == step)["output"]
    return found


def _paid_orders(lab: Lab, count: int) -> list[str]:
    """Orders placed and paid through the service's API (items, totals, stock and payments as in
    production), as a customer would: not the smoke test's, whose probe orders are removed at once."""
    host = lab.target.primary.hosts[0]
    url = f"http://{host.address}:{host.service_port}"
    with db.connect(lab.target.primary.database) as conn:
        user = conn.execute("SELECT min(id) FROM users").fetchone()
        product = conn.execute("SELECT min(id) FROM products WHERE stock >= %s", (count,)).fetchone()
    assert user is not None and product is not None and product[0] is not None
    placed = []
    for _ in range(count):
        order_id = str(uuid.uuid4())
        body = {
            "order_id": order_id,
            "user_id": user[0],
            "items": [{"product_id": product[0], "quantity": 1}],
        }
        assert call(url, "POST", "/orders", body)[0] == 201
        assert call(url, "POST", f"/orders/{order_id}/pay")[0] == 201
        placed.append(order_id)
    return placed


def _db_now(lab: Lab) -> datetime:
    with db.connect(lab.target.primary.database) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None and isinstance(row[0], datetime)
    return row[0].astimezone(UTC)


def _present(lab: Lab, schema: str, ids: list[str]) -> tuple[set[str], set[str]]:
    """(orders found, orders with a transaction found) among `ids` in `schema` of the live database."""
    with db.connect(lab.target.primary.database) as conn:
        orders = conn.execute(
            f"SELECT id::text FROM {schema}.orders WHERE id = ANY(%s::uuid[])", (ids,)
        ).fetchall()
        paid = conn.execute(
            f"SELECT order_id::text FROM {schema}.transactions WHERE order_id = ANY(%s::uuid[])", (ids,)
        ).fetchall()
    return {str(row[0]) for row in orders}, {str(row[0]) for row in paid}


def test_a_realtime_base_backup_with_orders_before_and_after_a_noted_time(lab: Lab) -> None:
    extravars = wal_archive_extravars(lab.target)
    require_success(run_playbook(lab.plan.inventory_file, str(PLAYBOOK), extravars=extravars))
    base = take_base_backup(lab.target, service_version="v1")
    _state["backup_ids"] = {manifest.domain: manifest.backup_id for manifest in base.manifests}
    _state["first"] = _paid_orders(lab, 3)
    time.sleep(0.5)
    _state["noted"] = _db_now(lab)
    time.sleep(0.5)
    _state["second"] = _paid_orders(lab, 3)
    with db.connect(lab.target.primary.database) as conn:
        # What a corrupting release leaves: a total its lines do not add up to.
        conn.execute("UPDATE orders SET total_cents = total_cents + 1 WHERE id = %s", (_state["second"][0],))
    switch_and_wait_archived(lab.target.primary.database)
    ship_wal(lab.target)
    assert set(_state["backup_ids"]) == {"orders", "transactions"}


def test_a_dry_run_checks_the_time_names_the_backups_and_counts_the_rows_after_it(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    target = ["-t", str(lab.dir / "target.yaml")]
    future = (_db_now(lab) + timedelta(hours=1)).isoformat()
    code, _, err = _cli(
        capsys, "restore", "--domains", "orders,transactions", "--at", future, "--dry-run", *target
    )
    assert code == ExitCode.USAGE
    assert len(err.strip().splitlines()) == 1 and "is in the future" in err, err

    at = _state["noted"].isoformat()
    args = ["restore", "--domains", "orders,transactions", "--at", at, "--dry-run", "-o", "json", *target]
    code, doc, err = _cli(capsys, *args)
    assert code == ExitCode.OK, err
    preview = doc["result"]["preview"]
    assert {b["domain"]: b["backup_id"] for b in preview["backups"]} == _state["backup_ids"]
    assert preview["scope"]["action"] == "as-asked"
    after = {item["domain"]: item["tables"] for item in preview["after_target"]}
    assert after == {"orders": {"orders": 3, "order_items": 3}, "transactions": {"transactions": 3}}
    assert preview["to_person"] == 1
    assert "9 rows will be carried over" in preview["after_target_plan"]
    assert "except 1 order whose total does not match its lines" in preview["after_target_plan"]
    steps = [step["name"] for step in doc["result"]["steps"]]
    assert steps.index("scope") == 0 and steps.index("carry-over") == steps.index("swap-in") + 1

    capsys.readouterr()
    assert main(["restore", "--domains", "orders,transactions", "--at", at, "--dry-run", *target]) == 0
    out = capsys.readouterr().out
    assert f"backup: orders: {_state['backup_ids']['orders']} (realtime" in out, out
    assert "after the backups' moment: of the rows written after the restore's moment, 9 rows" in out, out


def test_restore_at_the_noted_time_carries_the_later_orders_over_and_hands_the_damaged_one_over(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """Restoring to a time before a corruption put live back to that time and dropped every later order
    without a word; now the later orders the corruption did not touch are carried over and the damaged
    one is listed for a person."""
    first: list[str] = _state["first"]
    second: list[str] = _state["second"]
    at = _state["noted"].isoformat()
    args = ["restore", "--domains", "orders,transactions", "--at", at, "--yes", "-o", "json"]
    code, doc, err = _cli(capsys, *args, "-t", str(lab.dir / "target.yaml"))
    assert code == ExitCode.OK, err
    scoped = _step_output(doc, "scope")
    assert scoped["after_target_rows"] == 9 and scoped["to_person"] == 1
    chosen = {c["domain"]: (c["backup_id"], c["kind"]) for c in _step_output(doc, "select")["choices"]}
    assert chosen == {domain: (backup_id, "realtime") for domain, backup_id in _state["backup_ids"].items()}
    restored = _step_output(doc, "restore-beside")
    assert set(restored["from_backup"]) == {"orders", "transactions"}
    assert restored["staging_schema"] and restored["from_live"] == []  # tables staged in live, none copied
    assert _step_output(doc, "verify-restored")["invariants"] == "passed"
    assert _step_output(doc, "start-service")["smoke_test"] == "passed"

    # Live holds the orders (and payments) committed up to the noted time and the later ones the
    # corruption did not touch; the damaged one is listed for a person with its payment.
    assert _present(lab, "public", first + second) == (set(first + second[1:]), set(first + second[1:]))
    with db.connect(lab.target.primary.database) as conn:
        assert invariants.run_invariants(conn, "public").passed
    carried = _step_output(doc, "carry-over")
    assert (carried["orders_inserted"], carried["items"], carried["transactions"]) == (2, 2, 2)
    assert carried["needs_a_person_count"] == 1
    handed = json.loads(Path(carried["needs_a_person_file"]).read_text())
    assert [order["order_id"] for order in handed] == [second[0]] and len(handed[0]["payments"]) == 1

    # Live's replaced tables are kept, with the later orders in them.
    replaced = _step_output(doc, "swap-in")["replaced"]
    assert _present(lab, replaced, first + second) == (set(first + second), set(first + second))
    record = json.loads(Path(_step_output(doc, "record")["record"]).read_text())
    assert record["replaced"] == replaced
    assert not list(lab.plan.primary.pg_dir.glob("pitr-*")), "the scratch cluster is removed"


def test_a_point_in_time_restore_of_orders_alone_names_the_payments_it_would_orphan(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """The later orders carried over above have payments: orders alone back to the noted time would leave
    those payments pointing at nothing (pg_restore failed on transactions_order_id_fkey before)."""
    target = ["-t", str(lab.dir / "target.yaml")]
    at = _state["noted"].isoformat()
    args = ["restore", "--domains", "orders", "--at", at, "-o", "json", *target]
    with db.connect(lab.target.primary.database) as conn:
        before = conn.execute("SELECT datname FROM pg_database ORDER BY 1").fetchall()
    code, doc, err = _cli(capsys, *args, "--yes")
    assert code == ExitCode.REFUSED, err
    assert len(err.strip().splitlines()) == 1, err
    assert doc["result"]["code"] == "restore.scope_orphans"
    assert doc["result"]["message"] == (
        "restoring orders without transactions would orphan 2 rows of transactions "
        "(transactions_order_id_fkey: they reference orders newer than the orders backup); "
        "restore --domains orders,transactions instead, or pass --scope widen; nothing was changed"
    )
    with db.connect(lab.target.primary.database) as conn:
        assert conn.execute("SELECT datname FROM pg_database ORDER BY 1").fetchall() == before

    code, doc, err = _cli(capsys, *args, "--scope", "widen", "--dry-run")
    assert code == ExitCode.OK, err
    scope = doc["result"]["preview"]["scope"]
    assert (scope["action"], scope["domains"]) == ("widen", ["orders", "transactions"])
    assert scope["reason"].endswith("widened the scope to orders, transactions")
    assert [item["rows"] for item in scope["orphans"]] == [2]


def test_prune_removes_old_realtime_backups_and_wal_series_from_both_copies(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    stores = realtime_stores(lab.target)
    # A WAL series as a backup taken ten days ago would have left (the objects' bytes, under its name).
    old_series = f"{_db_now(lab) - timedelta(days=10):%Y%m%d}-orders-realtime.wal"
    [current] = wal_series(stores.local)
    for store in stores.both:
        for key in store.list_keys(f"orders/{current}/")[:4]:
            data = store.get_bytes(key)
            assert data is not None
            store.put_bytes(key.replace(current, old_series), data)
    newer = take_base_backup(lab.target, service_version="v1")  # supersedes the first one (same day)
    older_ids = set(_state["backup_ids"].values())
    args = ["backup", "prune", "--keep-daily", "1", "--keep-weekly", "0", "-t", str(lab.dir / "target.yaml")]

    code, doc, err = _cli(capsys, *args, "--dry-run", "-o", "json")
    assert code == ExitCode.OK, err
    doomed = {row["backup_id"] for row in doc["result"]["decisions"] if not row["keep"]}
    assert doomed == older_ids
    assert [row["series"] for row in doc["result"]["wal_series"] if not row["keep"]] == [old_series]

    code, _, err = _cli(capsys, *args)
    assert code == ExitCode.NEEDS_CONFIRMATION, err
    assert all(old_series in wal_series(store) for store in stores.both), "nothing deleted without --yes"

    code, doc, err = _cli(capsys, *args, "--yes", "-o", "json")
    assert code == ExitCode.OK, err
    run_id = doc["result"]["run_id"]
    for store in stores.both:
        assert wal_series(store) == [current]
        for backup_id in older_ids:
            name = BackupName.parse(backup_id)
            assert store.head(object_key(name)) is None
            assert store.head(object_key(name) + ".wal-range.json") is None
        kept = coverage(store, BackupName.parse(newer.manifest("orders").backup_id))
        assert kept.segments[0].file_name == kept.wal_range.first_segment.name()
    remaining = {entry.backup_id for entry in catalog_for(lab.target, with_keys=False).entries()}
    assert remaining == {manifest.backup_id for manifest in newer.manifests}
    journal = read_journal(journal_path(lab.target.state_dir, run_id))
    finished = [
        r for r in journal if r.get("event") == "step.finished" and r.get("step") == "delete-wal-series"
    ]
    assert finished and old_series in json.dumps(finished[0])
