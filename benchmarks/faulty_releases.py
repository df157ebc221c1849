"""Every faulty release, on a real lab under load: how long until it is caught, how long until the
previous release runs again verified, and how many acknowledged orders were lost (the goal is 0).

Builds its own lab (default 10,000 orders). For each faulty release it starts the load generator (real
orders through the front door, each acknowledgement in a ledger), runs the upgrade from v1 with
automatic rollback, lets the load run a second on the rolled-back release, stops it and checks the
ledger against the database as `recovery verify --ledger` does. v2-bad-migration runs with the
migration dry run skipped, so it fails in the deploy's migrate step rather than in preflight (preflight
refuses it otherwise); v2-needs-newer-postgres is refused by preflight, and the table says whether
anything changed. Prints a table and the load average before and after; asserts nothing. The lab is
torn down at the end, also on failure.

Columns: the gate that failed; detection = deploy + gates of the failed upgrade; failed gate ->
verified rollback = from the end of the failed upgrade to the end of the rollback's verification;
whether the database went back to the restore point; orders acknowledged during the attempt; lost =
acknowledged orders (or payments) missing or changed afterwards and not listed for a person; listed =
orders the rollback could not carry over (damaged by the release) and listed for a person. Last, one
round of the gates' invariants on the primary is timed over every row and over the rows written since
the last attempt's deploy (what the gates judge when the upgrade passes its deploy's start).

Usage: .venv/bin/python benchmarks/faulty_releases.py [--orders N] [--base-port B] [--lab-dir DIR]
                                                      [--rate R]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rollback_lab import lab, lab_dir_for, load_average, rollback_figures

from recovery.drivers import db
from recovery.load.generator import LoadGenerator, LoadSettings
from recovery.load.ledger import Ledger, read_ledger
from recovery.load.ledger_check import StoredOrder, check_ledger, ledger_order_ids, observe_orders
from recovery.release.gates import invariants_since
from recovery.release.installed import read_target_releases
from recovery.runbooks.rollback import upgrade_with_rollback
from recovery.runbooks.upgrade import upgrade_params
from recovery.targets.model import Target
from recovery.verify.invariants import run_invariants

FAULTY = ("v2-bad-migration", "v2-crash", "v2-unhealthy", "v2-corrupts-totals", "v2-slow")
REFUSED = "v2-needs-newer-postgres"
# The migration dry run refuses v2-bad-migration in preflight; skipped, its migrate step fails instead.
SKIP_CHECKS: Mapping[str, tuple[str, ...]] = {"v2-bad-migration": ("migration_dry_run",)}


def lost_orders(
    ledger: Ledger, stored: Mapping[str, Sequence[StoredOrder]], listed: Collection[str]
) -> list[str]:
    """Acknowledged orders missing, stored with another total, or acknowledged as paid and not paid,
    minus those the rollback listed for a person. Pure."""
    lost = set()
    for order in ledger.orders:
        rows = stored.get(order.order_id, ())
        wrong_total = order.total_cents is not None and any(r.total_cents != order.total_cents for r in rows)
        if not rows or wrong_total:
            lost.add(order.order_id)
    for payment in ledger.payments:
        rows = stored.get(payment.order_id, ())
        if not rows or any(row.status != "paid" for row in rows):
            lost.add(payment.order_id)
    return sorted(lost - set(listed))


def _state(target: Target) -> tuple[list[str | None], int]:
    """The release each host runs and the database's schema version."""
    releases = sorted({h.release for h in read_target_releases(target)}, key=str)
    with db.connect(target.primary.database) as conn:
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return releases, int(str(row[0])) if row and row[0] is not None else 0


def _listed(figures: Mapping[str, Any]) -> list[str]:
    path = figures.get("needs_a_person_file")
    if not path:
        return []
    return [str(d["order_id"]) for d in json.loads(Path(path).read_text())]


def measure(target: Target, release: str, ledgers: Path, rate: float) -> dict[str, Any]:
    before = _state(target)
    ledger_path = ledgers / f"{release}.jsonl"
    generator = LoadGenerator(LoadSettings(target.traffic.front_door_url, rate=rate), ledger_path)
    generator.start()
    try:
        params = upgrade_params(
            release, watch_seconds=5, health_timeout=10, skip_checks=SKIP_CHECKS.get(release, ())
        )
        outcome = upgrade_with_rollback(target, params, auto_rollback=True)
        time.sleep(1)  # orders on the rolled-back release too
    finally:
        summary = generator.stop()
    row: dict[str, Any] = {
        "release": release,
        "status": outcome.status,
        "reason": outcome.reason,
        "skipped_checks": list(SKIP_CHECKS.get(release, ())),
    }
    if outcome.status == "rolled_back" and outcome.rollback is not None:
        row.update(rollback_figures(outcome))
    else:
        row.update({"failed_gate": outcome.failed_gate, "load_after": load_average()})
    ledger = read_ledger(ledger_path)
    stored = observe_orders(target.primary.database, ledger_order_ids(ledger))
    verdict = check_ledger(ledger, stored)
    listed = _listed(row)
    after = _state(target)
    row.update(
        {
            "acknowledged": len(ledger.orders),
            "load_failed": summary.failed,
            "verify_ledger": verdict.summary(),
            "lost": len(lost_orders(ledger, stored, listed)),
            "listed": len(listed),
            "state_before": before,
            "state_after": after,
            "unchanged": before == after,
        }
    )
    return row


def invariant_figures(target: Target, deploy_started: datetime) -> dict[str, Any]:
    """How long one round of the gates' invariants takes on the primary now: over every row, and over the
    rows written since `deploy_started` (what the gates judge when the upgrade tells them)."""
    figures: dict[str, Any] = {}
    with db.connect(target.primary.database) as conn:
        for scope, since in (("every_row", None), ("since_deploy", invariants_since(deploy_started))):
            started = time.monotonic()
            report = run_invariants(conn, "public", since)
            figures[scope] = {"seconds": round(time.monotonic() - started, 3), "passed": report.passed}
    return figures


def _cell(value: Any, unit: str = "") -> str:
    return "-" if value is None else f"{value}{unit}"


def print_table(orders: int, rows: Sequence[Mapping[str, Any]], invariants: Mapping[str, Any]) -> None:
    print(f"\nfaulty releases from v1 at {orders} orders, under load (auto-rollback, watch 5 s)")
    head = (
        f"{'release':<24} {'failed gate':<11} {'detect s':>8} {'->verified s':>12} {'db back':>7} "
        f"{'acked':>6} {'lost':>5} {'listed':>6}  load after"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        if r["status"] == "refused":
            print(
                f"{r['release']:<24} {'preflight':<11} {'-':>8} {'-':>12} {'-':>7} {r['acknowledged']:>6} "
                f"{r['lost']:>5} {r['listed']:>6}  {r['load_after']}   refused, "
                f"{'nothing changed' if r['unchanged'] else 'CHANGED: ' + str(r['state_after'])}"
            )
            continue
        back = "yes" if r.get("database_restored") else "no"
        print(
            f"{r['release']:<24} {_cell(r.get('failed_gate')):<11} {_cell(r.get('detection_s')):>8} "
            f"{_cell(r.get('failed_gate_to_verified_s')):>12} {back:>7} {r['acknowledged']:>6} "
            f"{r['lost']:>5} {r['listed']:>6}  {r['load_after']}"
        )
    print()
    for r in rows:
        print(f"{r['release']}: {r['status']}: {r['reason']}")
        if r["skipped_checks"]:
            print(f"  preflight checks skipped: {', '.join(r['skipped_checks'])}")
        if r.get("rollback_steps"):
            print(f"  upgrade steps: {r['upgrade_steps']}")
            print(f"  rollback steps: {r['rollback_steps']}")
        print(
            f"  verify --ledger: {r['verify_ledger']} ({r['load_failed']} requests failed during the attempt)"
        )
        print(f"  hosts and schema after: {r['state_after'][0]}, schema {r['state_after'][1]}")
    full, scoped = invariants["every_row"], invariants["since_deploy"]
    print(
        f"\none round of the invariants on the primary afterwards: every row {full['seconds']:.2f} s "
        f"(passed: {full['passed']}); rows written since the last attempt's deploy (with the gates' "
        f"margin) {scoped['seconds']:.2f} s (passed: {scoped['passed']})"
    )


def main_benchmark() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--base-port", type=int, default=23000)
    parser.add_argument("--lab-dir", type=Path, default=None)
    parser.add_argument("--rate", type=float, default=20.0, help="orders per second during each attempt")
    args = parser.parse_args()
    lab_dir = lab_dir_for(args.lab_dir, "order-recovery-bench-faulty-")
    ledgers = lab_dir / "ledgers"
    ledgers.mkdir(exist_ok=True)
    print(f"load average before: {load_average()}", flush=True)
    rows: list[dict[str, Any]] = []
    with lab(lab_dir, args.orders, args.base_port, purge=args.lab_dir is None) as target:
        for release in (REFUSED, *FAULTY):
            print(f"-- {release}", flush=True)
            started = datetime.now(UTC)
            rows.append(measure(target, release, ledgers, args.rate))
        invariants = invariant_figures(target, started)
    print_table(args.orders, rows, invariants)
    print(f"load average at the end: {load_average()}")
    print(json.dumps({"attempts": rows, "invariants": invariants}, indent=2, default=str), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main_benchmark())
