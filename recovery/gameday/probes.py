"""Chaos Toolkit probes of the `recovery` extension (python provider, module `recovery.gameday.probes`).

Each takes the target as a name or a target.yaml path (`${recovery_target}` in the experiments) and
returns a plain value a tolerance can judge. Actions are the `recovery` command itself (process
provider): a scenario runs the same commands a person or a pipeline would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from recovery.backup.catalog import CopyState, catalog_for
from recovery.drivers import db
from recovery.drivers.orderservice import call
from recovery.engine.journal import is_running, read_journal, run_ids, runs_dir
from recovery.engine.result import summarize
from recovery.errors import ExternalFailure
from recovery.load.ledger import read_ledger
from recovery.load.ledger_check import verify_ledger
from recovery.targets import load_target

CATALOGUE_MARK = " [damaged by a game day]"  # what recovery.gameday.faults.damage_catalogue appends


def front_door_healthy(target: str = "lab") -> bool:
    """True when the service behind the target's front door answers /health with status ok."""
    try:
        status, document = call(load_target(target).traffic.front_door_url, "GET", "/health", timeout=5)
    except ExternalFailure:
        return False
    return status == 200 and isinstance(document, dict) and document.get("status") == "ok"


def service_version(target: str = "lab") -> str | None:
    """The release the front door serves now (None when it does not answer)."""
    try:
        status, document = call(load_target(target).traffic.front_door_url, "GET", "/version", timeout=5)
    except ExternalFailure:
        return None
    return str(document.get("version")) if status == 200 and isinstance(document, dict) else None


def orders_flowing(ledger: str, timeout: float = 60) -> dict[str, Any]:
    """Waits until the load has an acknowledged order in its ledger (or `timeout` passed): a fault
    injected before the load took its first order would meet no load at all, and starting the `recovery`
    command takes seconds on a loaded machine. `flowing` and the number acknowledged so far."""
    deadline = time.monotonic() + timeout
    while True:
        acknowledged = len(read_ledger(Path(ledger)).orders) if Path(ledger).exists() else 0
        if acknowledged > 0 or time.monotonic() > deadline:
            return {"flowing": acknowledged > 0, "acknowledged": acknowledged}
        time.sleep(0.2)


def ledger_intact(ledger: str, target: str = "lab") -> dict[str, Any]:
    """The ledger check: `passed` is True when every acknowledged order exists exactly once as acked.

    Before the load has written anything (the steady state before the fault) no order was acknowledged,
    so none can be missing: an absent ledger passes with 0 acknowledged."""
    if not Path(ledger).exists():
        return {
            "passed": True,
            "acknowledged": 0,
            "lost": 0,
            "set_aside": 0,
            "summary": "no order acknowledged yet",
        }
    read = read_ledger(Path(ledger))
    verdict = verify_ledger(load_target(target), read)
    return {
        "passed": verdict.passed,
        "acknowledged": verdict.acknowledged,
        "lost": verdict.lost.count,
        "set_aside": verdict.set_aside.count,
        "summary": verdict.summary(),
    }


def last_run(runbook: str, target: str = "lab") -> dict[str, Any] | None:
    """The newest run of `runbook` on the target: its status, failed step and error code (None if none)."""
    state_dir = load_target(target).state_dir
    for run_id in sorted(run_ids(state_dir), reverse=True):
        path = runs_dir(state_dir) / run_id / "journal.jsonl"
        records = read_journal(path)
        if records and records[0].get("runbook") == runbook:
            result = summarize(records, running=is_running(path))
            return {
                "run_id": run_id,
                "status": result.status,
                "failed_step": result.failed_step,
                "code": result.code,
            }
    return None


def catalogue_intact(target: str = "lab") -> dict[str, Any]:
    """`passed` when no product carries the mark a game day's catalogue damage leaves."""
    with db.connect(load_target(target).primary.database, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE position(%s in name) > 0), count(*) FROM products",
            (CATALOGUE_MARK,),
        ).fetchone()
    damaged, products = (int(row[0]), int(row[1])) if row else (0, 0)
    return {"passed": damaged == 0, "damaged": damaged, "products": products}


def backups_whole(target: str = "lab") -> dict[str, Any]:
    """`passed` when every backup in either copy has its object and manifest in both: nothing half-written
    or half-deleted sits among the backups (a failed backup leaves no object at all)."""
    entries = catalog_for(load_target(target)).entries()
    partial = [
        f"{entry.backup_id} (local {entry.local.state}, remote {entry.remote.state})"
        for entry in entries
        if (entry.local.state, entry.remote.state) != (CopyState.PRESENT, CopyState.PRESENT)
    ]
    return {"passed": not partial, "backups": len(entries), "partial": partial}


def last_restore(target: str = "lab") -> dict[str, Any] | None:
    """The newest restore's record: which backup and which copy each domain came from, and why."""
    records = sorted((load_target(target).state_dir / "restores").glob("*.json"))
    if not records:
        return None
    record: dict[str, Any] = json.loads(records[-1].read_text(encoding="utf-8"))
    return {"run_id": record.get("run_id"), "choices": record.get("choices", [])}
