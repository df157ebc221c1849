"""Daily backups and restore end to end on a real lab: PostgreSQL, sshd hosts, ansible, moto's S3 and KMS.

Tests run in file order on one module lab: refusals that need no backup first, then backups, restores,
damaged copies, an interrupted restore, pruning, and last a restore while orders keep coming in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pytest
import yaml

from recovery.backup.catalog import catalog_for
from recovery.backup.keys import write_keyring
from recovery.backup.naming import BackupName
from recovery.backup.repository import object_key
from recovery.backup.stores import stores_for
from recovery.cli.main import main
from recovery.drivers import db as dbdriver
from recovery.drivers.aws import AwsDriver
from recovery.engine import journal_path, read_journal
from recovery.errors import ExitCode
from recovery.lab.plan import LabPlan
from recovery.load.generator import LoadGenerator, LoadSettings
from recovery.targets.model import Target
from recovery.verify.fingerprint import DEFAULT_ALGORITHM, FAST_ALGORITHM, Algorithm, fingerprint_tables


class Lab(Protocol):
    """The shape of the `lab` fixture (tests/lab/conftest.py)."""

    dir: Path
    plan: LabPlan
    target: Target


# moto accepts any credentials; the lab's target names none (its endpoint is the lab's moto server).
LAB_AWS_ENV = {"AWS_ACCESS_KEY_ID": "lab", "AWS_SECRET_ACCESS_KEY": "lab"}


@pytest.fixture(autouse=True)
def _lab_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LAB_AWS_ENV.items():
        monkeypatch.setenv(name, value)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    doc = json.loads(out) if out.strip().startswith("{") else None
    return code, doc, err


def _target_args(lab: Lab) -> list[str]:
    return ["-t", str(lab.dir / "target.yaml")]


def _connect(lab: Lab, dbname: str | None = None) -> psycopg.Connection[Any]:
    return dbdriver.connect(lab.target.primary.database, dbname=dbname)


def _databases(lab: Lab) -> set[str]:
    with _connect(lab, "postgres") as conn:
        return {str(row[0]) for row in conn.execute("SELECT datname FROM pg_database").fetchall()}


def _schemas(lab: Lab, prefix: str) -> set[str]:
    """Schemas of the live database whose name starts with `prefix` (a restore's staging or set-aside)."""
    with _connect(lab) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (prefix,))
        return {str(row[0]) for row in rows}


def _set_aside(lab: Lab) -> set[str]:
    """What restores set aside and prune-replaced drops: replaced databases and replaced_ schemas."""
    return {name for name in _databases(lab) if "_replaced_" in name} | _schemas(lab, "replaced_")


def _fingerprints(
    lab: Lab, *tables: str, algorithm: Algorithm = DEFAULT_ALGORITHM
) -> dict[str, tuple[int, str]]:
    with _connect(lab) as conn:
        found = fingerprint_tables(conn, "public", tables, algorithm=algorithm)
    return {name: (fp.rows, fp.content_hash) for name, fp in found.items()}


def _variant(lab: Lab, tmp_path: Path, change: Any) -> str:
    """A copy of the lab's target file with `change(document)` applied; returns its path."""
    document = yaml.safe_load((lab.dir / "target.yaml").read_text())
    change(document)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(document))
    return str(path)


def _corrupt(lab: Lab, label: str, backup_id: str) -> None:
    """Rewrite bytes in the middle of one stored copy (same size), as a damaged disk or a tamperer would."""
    local, remote = stores_for(lab.target, AwsDriver(lab.target.aws))
    store = local if label == "local" else remote
    client = AwsDriver(lab.target.aws).s3(store.region)
    key = store.prefix + object_key(BackupName.parse(backup_id))
    body = bytearray(client.get_object(Bucket=store.bucket, Key=key)["Body"].read())
    middle = len(body) // 2
    body[middle : middle + 16] = bytes(byte ^ 0xFF for byte in body[middle : middle + 16])
    client.put_object(Bucket=store.bucket, Key=key, Body=bytes(body))


def _step_output(doc: dict[str, Any], step: str) -> dict[str, Any]:
    run = doc["result"] if "steps" in doc["result"] else doc["result"]["run"]
    found: dict[str, Any] = next(s for s in run["steps"] if s["name"] == step)["output"]
    return found


# Refusals that need no backup at all -------------------------------------------------------------------


def test_restore_without_any_backup_is_refused_and_changes_nothing(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _databases(lab)
    code, doc, _err = _cli(capsys, "restore", "--domains", "users", "--yes", "-o", "json", *_target_args(lab))
    assert code == ExitCode.REFUSED
    assert doc["result"]["code"] == "restore.no_backup"
    assert "no backup of users exists" in doc["result"]["message"]
    assert _databases(lab) == before


def test_verify_all_without_backups_fails_on_freshness(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _err = _cli(capsys, "backup", "verify", "--all", "-o", "json", *_target_args(lab))
    assert code == ExitCode.VERIFY_FAILED
    assert any("no verified daily backup of orders" in reason for reason in doc["result"]["stale"])


# Backups ------------------------------------------------------------------------------------------------


def test_backup_run_writes_every_domain_to_both_copies(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    # Backups hash rows with the server's fastest fingerprint (the lab's PostgreSQL has it).
    expected = _fingerprints(lab, "orders", "order_items", "transactions", algorithm=FAST_ALGORITHM)
    code, doc, err = _cli(capsys, "backup", "run", "-o", "json", *_target_args(lab))
    assert code == ExitCode.OK, err
    backups = {b["domain"]: b for b in _step_output(doc, "back-up")["backups"]}
    assert set(backups) == {"orders", "users", "products", "transactions", "logs"}
    assert backups["orders"]["rows"]["orders"] == expected["orders"][0]
    # The logs domain carries each host's log files next to the events table.
    assert {"events", "file:primary-app", "file:standby-app"} <= set(backups["logs"]["rows"])
    assert backups["logs"]["rows"]["file:primary-app"] > 0
    copies = _step_output(doc, "verify-copies")["copies"]
    assert all(states == {"local": "verified", "remote": "verified"} for states in copies.values())
    # The manifest's fingerprints are the live tables' (nothing changed since).
    catalog = catalog_for(lab.target, with_keys=False)
    manifest = catalog.entry(BackupName.parse(backups["orders"]["backup_id"])).manifest
    assert manifest is not None
    assert {t.name: (t.rows, t.content_hash) for t in manifest.tables} == {
        "orders": expected["orders"],
        "order_items": expected["order_items"],
    }
    assert {t.algorithm for t in manifest.tables} == {FAST_ALGORITHM}
    # No packed log file is left on the hosts.
    for host in lab.target.hosts():
        assert not list((host.base_dir / "shared" / "backup").glob("*.tar"))
    # The log playbook's runs keep their files with the run, in the target's state, not in /tmp.
    run_id = doc["result"]["run_id"]
    kept = sorted(p.name for p in (lab.target.state_dir / "ansible").glob(f"{run_id}-logs-*"))
    assert kept == [f"{run_id}-logs-cleanup", f"{run_id}-logs-gather"]


def test_list_and_deep_verify_report_both_copies(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _ = _cli(capsys, "backup", "list", "-o", "json", *_target_args(lab))
    assert code == ExitCode.OK
    assert len(doc["result"]["backups"]) == 5
    code, doc, err = _cli(capsys, "backup", "verify", "--all", "--deep", "-o", "json", *_target_args(lab))
    assert code == ExitCode.OK, err
    assert all(
        row["local"]["state"] == row["remote"]["state"] == "verified" for row in doc["result"]["backups"]
    )
    assert not [name for name in _databases(lab) if "_verify_" in name]
    # In text, a header names the columns and the deep check says what it did.
    capsys.readouterr()
    assert main(["backup", "list", *_target_args(lab)]) == ExitCode.OK
    assert capsys.readouterr().out.splitlines()[0].split() == [
        "BACKUP",
        "TAKEN",
        "AT",
        "LOCAL",
        "COPY",
        "REMOTE",
        "COPY",
    ]
    assert main(["backup", "verify", "--all", "--deep", *_target_args(lab)]) == ExitCode.OK
    assert "deep: 5 backups decrypted and decompressed whole" in capsys.readouterr().out


def test_an_unknown_backup_id_is_bad_input_naming_the_command_that_lists_ids(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _doc, err = _cli(capsys, "backup", "verify", "20990101-orders-daily", *_target_args(lab))
    assert code == ExitCode.USAGE
    assert err.startswith("error[backup.unknown_id]: no backup 20990101-orders-daily in either copy of lab")
    assert "`recovery backup list --target" in err and err.count("\n") == 1


def test_verify_fails_when_the_newest_backup_is_older_than_the_objective(
    lab: Lab, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    strict = _variant(
        lab, tmp_path, lambda d: d.setdefault("objectives", {}).update(daily_backup_max_age_hours=1e-6)
    )
    code, _doc, err = _cli(capsys, "backup", "verify", "--all", "-o", "json", "-t", strict)
    assert code == ExitCode.VERIFY_FAILED
    assert "over the objective" in err


def test_backup_point_tags_every_domain(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, err = _cli(capsys, "backup", "point", "before-change", "-o", "json", *_target_args(lab))
    assert code == ExitCode.OK, err
    backups = _step_output(doc, "back-up")["backups"]
    assert len(backups) == 5 and all(b["restore_point"] == "before-change" for b in backups)


# Restore -----------------------------------------------------------------------------------------------


def test_restore_to_the_point_before_a_change_verifies_and_swaps(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _fingerprints(lab, "orders", "order_items", "transactions")
    with _connect(lab) as conn:
        gone = [str(r[0]) for r in conn.execute("SELECT id FROM transactions ORDER BY id LIMIT 7").fetchall()]
        conn.execute("DELETE FROM transactions WHERE id = ANY(%s::uuid[])", (gone,))
        conn.execute(
            "UPDATE orders SET status = 'cancelled' WHERE id = (SELECT min(id::text)::uuid FROM orders)"
        )
    assert _fingerprints(lab, "transactions") != {"transactions": before["transactions"]}
    args = ["restore", "--domains", "orders,transactions", "--point", "before-change", "--yes", "-o", "json"]
    code, doc, err = _cli(capsys, *args, *_target_args(lab))
    assert code == ExitCode.OK, err
    assert _step_output(doc, "verify-restored")["invariants"] == "passed"
    assert _step_output(doc, "start-service")["smoke_test"] == "passed"
    swapped = _step_output(doc, "swap-in")
    replaced = swapped["replaced"]
    assert swapped["replaced_kind"] == "schema"  # live's tables swapped out, inside live
    with _connect(lab) as conn:
        back = conn.execute(
            "SELECT count(*) FROM transactions WHERE id = ANY(%s::uuid[])", (gone,)
        ).fetchone()
        # The replaced tables are kept (with the change) until prune-replaced --yes.
        kept = conn.execute(
            f"SELECT count(*) FROM {replaced}.transactions WHERE id = ANY(%s::uuid[])", (gone,)
        ).fetchone()
    assert back is not None and back[0] == 7
    assert kept is not None and kept[0] == 0
    record = json.loads(Path(_step_output(doc, "record")["record"]).read_text())
    assert record["replaced"] == replaced


def test_prune_replaced_needs_yes(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "restore", "prune-replaced", *_target_args(lab))
    assert code == ExitCode.NEEDS_CONFIRMATION
    assert _set_aside(lab)
    code, doc, err = _cli(capsys, "restore", "prune-replaced", "--yes", "-o", "json", *_target_args(lab))
    assert code == ExitCode.OK, err
    assert doc["command"] == "restore prune-replaced"
    assert _step_output(doc, "drop-replaced")["dropped"]
    assert not _set_aside(lab)


def test_a_damaged_local_copy_makes_the_restore_use_the_remote_one(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc, err = _cli(capsys, "backup", "run", "-d", "orders", "-o", "json", *_target_args(lab))
    assert code == ExitCode.OK, err
    newest = _step_output(doc, "back-up")["backups"][0]["backup_id"]
    _corrupt(lab, "local", newest)
    code, doc, err = _cli(capsys, "restore", "--domains", "orders", "--yes", "-o", "json", *_target_args(lab))
    assert code == ExitCode.OK, err
    (choice,) = _step_output(doc, "select")["choices"]
    assert (choice["backup_id"], choice["copy"]) == (newest, "remote")
    assert "because the local copy is damaged" in choice["reason"]
    _cli(capsys, "restore", "prune-replaced", "--yes", *_target_args(lab))


def test_a_backup_damaged_in_both_copies_falls_back_to_the_older_one(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc, err = _cli(capsys, "backup", "run", "-d", "products", "-o", "json", *_target_args(lab))
    assert code == ExitCode.OK, err
    newest = _step_output(doc, "back-up")["backups"][0]["backup_id"]
    _corrupt(lab, "local", newest)
    _corrupt(lab, "remote", newest)
    code, doc, err = _cli(
        capsys, "restore", "--domains", "products", "--yes", "-o", "json", *_target_args(lab)
    )
    assert code == ExitCode.OK, err
    (choice,) = _step_output(doc, "select")["choices"]
    assert choice["backup_id"] != newest
    assert f"{newest} fails verification in both copies" in choice["reason"]
    _cli(capsys, "restore", "prune-replaced", "--yes", *_target_args(lab))


def test_verify_reports_the_damaged_copies(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc, _err = _cli(capsys, "backup", "verify", "--all", "-o", "json", *_target_args(lab))
    assert code == ExitCode.VERIFY_FAILED
    damaged = [row for row in doc["result"]["backups"] if not row["counts"]]
    assert damaged and all("sha256" in (row["local"]["detail"] + row["remote"]["detail"]) for row in damaged)


# Refusals ----------------------------------------------------------------------------------------------


def _refused(
    lab: Lab, capsys: pytest.CaptureFixture[str], target: str, *args: str
) -> tuple[int, dict[str, Any]]:
    before = _databases(lab)
    code, doc, err = _cli(capsys, "restore", *args, "-o", "json", "-t", target)
    assert _databases(lab) == before, "a refused restore changed the databases"
    assert len(err.strip().splitlines()) == 1, err
    return code, doc["result"]


def test_refusals_are_one_line_and_change_nothing(
    lab: Lab, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = str(lab.dir / "target.yaml")
    code, result = _refused(
        lab, capsys, target, "--domains", "orders", "--at", "2001-01-01T00:00:00Z", "--yes"
    )
    assert code == ExitCode.REFUSED and "outside every backup" in result["message"]
    code, result = _refused(lab, capsys, target, "--domains", "orders", "--point", "no-such-point", "--yes")
    assert code == ExitCode.REFUSED and "restore point 'no-such-point'" in result["message"]
    code, result = _refused(lab, capsys, target, "--domains", "orders")
    assert code == ExitCode.NEEDS_CONFIRMATION
    dead = _variant(
        lab, tmp_path / "dead", lambda d: d["primary"]["database"].update(port=lab.plan.base_port + 999)
    )
    code, result = _refused(lab, capsys, dead, "--domains", "orders", "--yes")
    assert code == ExitCode.REFUSED and result["code"] == "restore.database_unreachable"
    keyring = tmp_path / "keyring.json"
    write_keyring(keyring, {"other": os.urandom(32)}, "other")
    wrong = _variant(
        lab, tmp_path / "wrong", lambda d: d.update(keys={"kind": "keyring", "keyring": str(keyring)})
    )
    code, result = _refused(lab, capsys, wrong, "--domains", "orders", "--yes")
    # Under another key, no manifest authenticates: every backup is untrusted, nothing is restored.
    assert code == ExitCode.INTEGRITY and result["code"] == "restore.backups_damaged"
    assert "not trusted" in result["message"]
    missing = _variant(
        lab,
        tmp_path / "missing",
        lambda d: d.update(keys={"kind": "keyring", "keyring": str(tmp_path / "none")}),
    )
    code, result = _refused(lab, capsys, missing, "--domains", "orders", "--yes")
    assert code == ExitCode.INTEGRITY


def test_every_copy_damaged_stops_with_an_integrity_error(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = catalog_for(lab.target, with_keys=False)
    for entry in catalog.entries("users"):
        for label in ("local", "remote"):
            _corrupt(lab, label, entry.backup_id)
    code, result = _refused(lab, capsys, str(lab.dir / "target.yaml"), "--domains", "users", "--yes")
    assert code == ExitCode.INTEGRITY and result["code"] == "restore.backups_damaged"


# Verification and an interrupted restore ---------------------------------------------------------------


def test_domains_restored_from_backups_of_different_times_fail_verification(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    # A transactions backup, then an order paid, then an orders backup: the newest orders backup holds a
    # paid order whose payment the newest transactions backup lacks. (Probe orders leave no trace, so
    # the test pays an order of its own.)
    code, _, err = _cli(capsys, "backup", "run", "-d", "transactions", *_target_args(lab))
    assert code == ExitCode.OK, err
    with _connect(lab) as conn:
        row = conn.execute(
            "UPDATE orders SET status = 'paid' WHERE id = (SELECT id FROM orders WHERE status = 'placed' "
            "ORDER BY id LIMIT 1) RETURNING id, total_cents"
        ).fetchone()
        assert row is not None
        conn.execute(
            "INSERT INTO transactions (id, order_id, amount_cents, status, created_at) "
            "VALUES (gen_random_uuid(), %s, %s, 'captured', now())",
            (row[0], row[1]),
        )
    code, _, err = _cli(capsys, "backup", "run", "-d", "orders", *_target_args(lab))
    assert code == ExitCode.OK, err
    before = _fingerprints(lab, "orders", "order_items", "transactions")
    code, result = _refused(
        lab, capsys, str(lab.dir / "target.yaml"), "--domains", "orders,transactions", "--yes"
    )
    assert code == ExitCode.VERIFY_FAILED
    assert (
        "paid_orders_have_captured_payment" in result["message"] and "live is unchanged" in result["message"]
    )
    assert _fingerprints(lab, "orders", "order_items", "transactions") == before


def test_a_restore_killed_half_way_leaves_live_untouched_and_resumes(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(capsys, "backup", "run", "-d", "orders", "-d", "transactions", *_target_args(lab))
    assert code == ExitCode.OK, err
    before = _fingerprints(lab, "orders", "order_items", "transactions", "users")
    env = {**os.environ, **LAB_AWS_ENV}
    command = [
        sys.executable,
        "-m",
        "recovery.cli.main",
        "restore",
        "--domains",
        "orders,transactions",
        "--yes",
        *_target_args(lab),
    ]
    runs_dir = lab.target.state_dir / "runs"
    known = set(os.listdir(runs_dir))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        run_id = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            fresh = [name for name in os.listdir(runs_dir) if name not in known and "restore" in name]
            # The run's directory comes a moment before its journal: wait for both.
            if fresh and journal_path(lab.target.state_dir, fresh[0]).exists():
                run_id = fresh[0]
                records = read_journal(journal_path(lab.target.state_dir, run_id))
                if any(r["event"] == "step.started" and r["step"] == "restore-beside" for r in records):
                    break
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    records = read_journal(journal_path(lab.target.state_dir, run_id))
    assert not any(r["event"] == "step.finished" and r.get("step") == "swap-in" for r in records)
    assert _fingerprints(lab, "orders", "order_items", "transactions", "users") == before
    code, doc, err = _cli(capsys, "runs", "resume", run_id, "--yes", "-o", "json", *_target_args(lab))
    assert code == ExitCode.OK, err
    assert doc["result"]["status"] == "ok"
    assert not [name for name in _databases(lab) if "_restore_" in name]
    assert not _schemas(lab, "restore_")
    _cli(capsys, "restore", "prune-replaced", "--yes", *_target_args(lab))


# Retention ---------------------------------------------------------------------------------------------


def test_prune_keeps_the_newest_verified_backup_of_each_domain(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc, err = _cli(
        capsys,
        "backup",
        "prune",
        "--keep-daily",
        "1",
        "--keep-weekly",
        "0",
        "--dry-run",
        "-o",
        "json",
        *_target_args(lab),
    )
    assert code == ExitCode.OK, err
    planned = doc["result"]["decisions"]
    doomed = {d["backup_id"] for d in planned if not d["keep"]}
    kept = {d["backup_id"] for d in planned if d["keep"]}
    assert doomed and kept  # the newest verified backup of each domain stays, older ones go
    code, _, err = _cli(
        capsys, "backup", "prune", "--keep-daily", "1", "--keep-weekly", "0", *_target_args(lab)
    )
    assert code == ExitCode.NEEDS_CONFIRMATION
    code, doc, err = _cli(
        capsys,
        "backup",
        "prune",
        "--keep-daily",
        "1",
        "--keep-weekly",
        "0",
        "--yes",
        "-o",
        "json",
        *_target_args(lab),
    )
    assert code == ExitCode.OK, err
    catalog = catalog_for(lab.target, with_keys=False)
    remaining = [catalog.verify(entry.backup_id) for entry in catalog.entries()]
    for domain in ("orders", "products", "transactions", "logs"):
        assert any(e.domain == domain and e.counts for e in remaining), domain
    names = {entry.backup_id for entry in remaining}
    assert not doomed & names  # what the plan said goes is gone from both copies
    assert kept <= names  # and what it kept is still there


def test_rows_written_to_the_other_domains_while_a_restore_runs_stay_in_live(
    lab: Lab, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """orders and transactions go back to their backup; the events and stock changes the running service
    writes meanwhile are in live's own tables, which the restore never copies nor moves."""
    code, _, err = _cli(
        capsys, "backup", "run", "--domain", "orders", "--domain", "transactions", *_target_args(lab)
    )
    assert code == ExitCode.OK, err
    with _connect(lab) as conn:
        last_event = conn.execute("SELECT max(id) FROM events").fetchone()
    generator = LoadGenerator(LoadSettings(lab.target.traffic.front_door_url, rate=8), tmp_path / "l.jsonl")
    generator.start()
    try:
        time.sleep(2)  # orders, payments and their events are being written when the restore starts
        args = ["restore", "--domains", "orders,transactions", "--yes", "-o", "json", *_target_args(lab)]
        code, doc, err = _cli(capsys, *args)
    finally:
        summary = generator.stop()
    assert code == ExitCode.OK, err
    assert summary.acked > 0
    assert "swapped into live itself" in _step_output(doc, "catch-up-live")["skipped"]
    replaced = _step_output(doc, "swap-in")["replaced"]
    with _connect(lab) as conn:
        written = conn.execute("SELECT count(*) FROM events WHERE id > %s", last_event).fetchone()
        moved = conn.execute("SELECT to_regclass(%s)", (f"{replaced}.events",)).fetchone()
    assert written is not None and written[0] > 0
    assert moved == (None,), "only the restored domains' tables were set aside"
