"""Preflight, health gates, load and the ledger check on a real lab (PostgreSQL, sshd hosts, moto)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import Lab

from recovery.cli.main import main
from recovery.drivers import db
from recovery.errors import ExitCode
from recovery.load.generator import LoadGenerator, LoadSettings
from recovery.load.ledger import read_ledger
from recovery.load.ledger_check import check_ledger, ledger_order_ids, observe_orders
from recovery.release.catalog import get_release
from recovery.release.gates import watch_gates
from recovery.release.installed import read_target_releases
from recovery.release.preflight import PreflightOptions, run_preflight

pytestmark = pytest.mark.lab


@pytest.fixture
def moto_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto accepts any credentials; boto3 only needs some to sign its requests to the lab's endpoint.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "lab")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "lab")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _databases(lab: Lab) -> list[str]:
    with db.connect(lab.target.primary.database, dbname="postgres") as conn:
        return sorted(str(r[0]) for r in conn.execute("SELECT datname FROM pg_database").fetchall())


def _schema_version(lab: Lab) -> int:
    with db.connect(lab.target.primary.database) as conn:
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    assert row is not None
    return int(str(row[0]))


def test_preflight_passes_for_v2_with_its_migrations_dry_run(lab: Lab, moto_credentials: None) -> None:
    before = _databases(lab)
    report = run_preflight(lab.target, get_release("v2"), PreflightOptions(restore_point_pending=True))
    failures = [(c.name, c.subject, c.reason) for c in report.failures]
    assert report.passed, failures
    dry_run = next(c for c in report.checks if c.name == "migration_dry_run")
    assert dry_run.status == "pass"
    assert "0003_backfill_line_totals" in dry_run.reason and "schema 4" in dry_run.reason
    assert {c.subject for c in report.checks if c.name == "service_port"} == {"primary-app", "standby-app"}
    # The scratch database is gone and live data was not migrated.
    assert _databases(lab) == before
    assert _schema_version(lab) == 1


def test_without_backups_preflight_refuses_and_names_the_command_that_makes_one(
    lab: Lab, moto_credentials: None
) -> None:
    report = run_preflight(lab.target, get_release("v2"))
    assert not report.passed
    stale = [c for c in report.failures if c.name == "backups_fresh"]
    assert {c.subject for c in stale} >= {"orders daily", "users daily", "orders realtime"}
    for check in stale:  # each kind names its own maker: a daily backup never fixes a realtime one
        command = "recovery backup realtime" if check.subject.endswith("realtime") else "recovery backup run"
        assert f"`{command} --target lab`" in check.reason, check.reason
    assert next(c for c in report.checks if c.name == "migration_dry_run").status == "skip"


def test_preflight_refuses_v2_needs_newer_postgres_with_nothing_changed(
    lab: Lab, moto_credentials: None, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (_databases(lab), _schema_version(lab), read_target_releases(lab.target))
    target = str(lab.dir / "target.yaml")
    code, out, err = _cli(
        capsys, "preflight", "--release", "v2-needs-newer-postgres", "--target", target,
        "--restore-point-pending", "--output", "json",
    )  # fmt: skip
    assert code == ExitCode.REFUSED
    doc = json.loads(out)
    assert doc["status"] == "error" and doc["result"]["error"]["code"] == "preflight.refused"
    checks = {(c["name"], c["subject"]): c for c in doc["result"]["checks"]}
    assert checks[("postgres_version", "primary database")]["status"] == "fail"
    assert "the release needs 19 or newer" in checks[("postgres_version", "primary database")]["reason"]
    assert checks[("migration_dry_run", "primary database")]["status"] == "skip"
    assert {name for name, _ in checks} >= {"ssh", "python", "disk", "memory", "replication", "backup_store"}
    assert err.startswith("error[preflight.refused]: preflight refused v2-needs-newer-postgres on lab")
    assert (_databases(lab), _schema_version(lab), read_target_releases(lab.target)) == before


def test_load_then_verify_ledger_passes_and_a_deleted_order_is_named(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = str(lab.dir / "target.yaml")
    ledger = tmp_path / "ledger.jsonl"
    code, out, _ = _cli(
        capsys, "load", "--rate", "15", "--duration", "3", "--ledger", str(ledger), "--target", target,
        "--output", "json",
    )  # fmt: skip
    assert code == ExitCode.OK
    summary = json.loads(out)["result"]
    assert summary["acked"] >= 30 and summary["failed"] == 0
    assert summary["p95_ms"] is not None

    code, out, _ = _cli(capsys, "verify", "--ledger", str(ledger), "--target", target)
    assert code == ExitCode.OK, out
    assert f"{summary['acked']} of {summary['acked']} acknowledged orders exist exactly once" in out

    victim = read_ledger(ledger).orders[5].order_id
    with db.connect(lab.target.primary.database) as conn, conn.transaction():
        conn.execute("DELETE FROM transactions WHERE order_id = %s", (victim,))
        conn.execute("DELETE FROM order_items WHERE order_id = %s", (victim,))
        conn.execute("DELETE FROM orders WHERE id = %s", (victim,))
    code, out, err = _cli(capsys, "verify", "--ledger", str(ledger), "--target", target)
    assert code == ExitCode.VERIFY_FAILED
    assert f"1 lost (e.g. {victim})" in out
    assert err.startswith("error[verify.ledger]: ledger check failed") and victim in err


def test_gates_hold_on_the_healthy_v1_lab_under_background_load(lab: Lab, tmp_path: Path) -> None:
    ledger = tmp_path / "background.jsonl"
    generator = LoadGenerator(LoadSettings(lab.target.traffic.front_door_url, rate=10), ledger)
    generator.start()
    try:
        report = watch_gates(lab.target, window_s=6, interval_s=2)
    finally:
        summary = generator.stop()
    assert report.passed, (report.failed_gate, report.reason)
    assert report.failed_gate is None and report.detect_s is None
    assert report.watched_s >= 6 and report.requests >= 15 and report.errors == 0
    gates = {r.gate for s in report.samples for r in s.results}
    assert gates == {"health", "error_rate", "latency", "smoke", "invariants"}
    assert summary.acked >= 40 and summary.failed == 0
    read = read_ledger(ledger)
    verdict = check_ledger(read, observe_orders(lab.target.primary.database, ledger_order_ids(read)))
    assert verdict.passed, verdict.summary()


def test_the_first_gate_round_judges_rows_written_before_the_deploy(lab: Lab) -> None:
    # A migration can rewrite old rows without touching updated_at: the scoped rounds would not see
    # them, so the first round judges every row.
    with db.connect(lab.target.primary.database) as conn, conn.transaction():
        row = conn.execute("SELECT id FROM orders ORDER BY created_at LIMIT 1").fetchone()
        assert row is not None
        old_order = row[0]
        conn.execute("UPDATE orders SET total_cents = total_cents + 1 WHERE id = %s", (old_order,))
    try:
        report = watch_gates(lab.target, window_s=2, interval_s=1, deploy_started=datetime.now(UTC))
    finally:
        with db.connect(lab.target.primary.database) as conn, conn.transaction():
            conn.execute("UPDATE orders SET total_cents = total_cents - 1 WHERE id = %s", (old_order,))
    assert not report.passed and report.failed_gate == "invariants", report.reason
    assert str(old_order) in report.reason
    assert len(report.samples) == 1


def test_a_stopped_service_fails_the_health_gate_at_once(lab: Lab) -> None:
    # A closed port stands for a crashed service: the gates watch a target whose primary host's service
    # port has nothing listening (the lab's own service keeps running for the other tests).
    primary = lab.target.primary.hosts[0]
    dead = primary.model_copy(update={"service_port": lab.plan.base_port + 999 - 1})
    site = lab.target.primary.model_copy(update={"hosts": (dead,)})
    report = watch_gates(lab.target.model_copy(update={"primary": site}), window_s=10, interval_s=2)
    assert not report.passed and report.failed_gate == "health"
    assert report.reason.startswith(f"host {primary.name} is not healthy: GET http://{primary.address}:")
    assert report.detect_s is not None and report.detect_s < report.window_s
    assert len(report.samples) == 1


def test_bad_input_is_one_line_and_changes_nothing(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    target = str(lab.dir / "target.yaml")
    code, _, err = _cli(capsys, "preflight", "--release", "v9", "--target", target)
    assert code == ExitCode.USAGE and err.startswith("error[usage]: unknown release 'v9'")
    code, _, err = _cli(capsys, "load", "--rate", "0", "--duration", "1", "--ledger", "/tmp/x", "-t", target)
    assert code == ExitCode.USAGE and "--rate 0 is out of range" in err
    missing = f"/tmp/{uuid.uuid4()}.jsonl"
    code, _, err = _cli(capsys, "verify", "--ledger", missing, "--target", target)
    assert code == ExitCode.USAGE and f"no ledger at {missing}" in err
