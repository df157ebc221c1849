"""Degraded mode under load, per incident kind: what clients saw refused with the service refusing what
its database cannot take (degraded mode off, as before) and with it queueing those orders (on), and what
the replay at the end of the incident did with them.

Builds its own lab (default 2,000 orders). For each mode (off, then on) the services are redeployed with
`order_service_degraded_mode` set accordingly, then each incident runs under the load generator (real
orders through the front door, each answer in a ledger):
  rollback  `upgrade --release v2-unhealthy --auto-rollback`: the rollback fences the service out of its
            database around the swap, then switches the code back (a restart);
  restore   a backup of the users domain, then `restore --domains users`: fenced around the catch-up
            and the swap;
  failover  the writer's database killed (kill -9; its order service and host stay up), then
            `failover --yes`: fence, promote the standby, move traffic, replay. Between the two modes the
            lost database is started again and `failback --switch-back` puts the lab back as it was
            (not measured).
Columns: orders sent; refused = order requests answered with an error status (the database could not
take them); no answer = refused connections and timeouts (the service restarting); queued = accepted as
pending (202); replayed = entered by the runbook's replay step (created + already there); duplicated and
lost = `recovery verify --ledger` after the incident; replay rate = orders per second of that step.
Prints a table and the load average; asserts nothing. The lab is torn down at the end, also on failure.

Usage: .venv/bin/python benchmarks/intake_incidents.py [--orders N] [--base-port B] [--lab-dir DIR]
                                                       [--rate R] [--kinds rollback,restore,failover]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from rollback_lab import lab, lab_dir_for, load_average

from recovery.cli.main import main
from recovery.lab import service
from recovery.lab.outage import restart_database, stop_database
from recovery.lab.plan import plan_lab
from recovery.load.generator import LoadGenerator, LoadSettings
from recovery.load.ledger import read_ledger
from recovery.load.ledger_check import verify_ledger
from recovery.runbooks.rollback import upgrade_with_rollback
from recovery.runbooks.upgrade import upgrade_params
from recovery.targets.load import load_target
from recovery.targets.model import Target

KINDS = ("rollback", "restore", "failover")


def set_degraded_mode(lab_dir: Path, base_port: int, on: bool) -> None:
    """Write the mode into the lab's inventory and redeploy v1 so every host's config carries it."""
    plan = plan_lab(lab_dir, base_port)
    inventory = yaml.safe_load(plan.inventory_file.read_text())
    inventory["all"]["children"]["app"].setdefault("vars", {})["order_service_degraded_mode"] = on
    plan.inventory_file.write_text(yaml.safe_dump(inventory, sort_keys=False))
    service.deploy(plan, "v1")


def _json_cli(*args: str) -> tuple[int, dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*args, "-o", "json"])
    return code, json.loads(out.getvalue())


def rollback(target: Target) -> dict[str, Any]:
    params = upgrade_params("v2-unhealthy", watch_seconds=3, health_timeout=10)
    outcome = upgrade_with_rollback(target, params, auto_rollback=True)
    if outcome.status != "rolled_back" or outcome.rollback is None:
        raise SystemExit(f"the rollback incident did not roll back: {outcome.status}: {outcome.reason}")
    return dict(outcome.rollback.step("replay-intake").output or {})


def _replay_step(document: dict[str, Any]) -> dict[str, Any]:
    steps = {step["name"]: step["output"] for step in document["result"]["steps"]}
    return dict(steps.get("replay-intake") or {})


def restore(target_file: Path) -> dict[str, Any]:
    where = ("-t", str(target_file))
    code, document = _json_cli("backup", "run", "-d", "users", *where)
    if code != 0:
        raise SystemExit(f"backup failed: {document}")
    code, document = _json_cli("restore", "--domains", "users", "--yes", *where)
    if code != 0:
        raise SystemExit(f"restore failed: {document}")
    return _replay_step(document)


def failover(target_file: Path, base_port: int) -> dict[str, Any]:
    """The writer's database lost under load, then the failover runbook (ending with the replay)."""
    time.sleep(2)  # orders before the loss too
    lost = plan_lab(target_file.parent, base_port).site(load_target(target_file).writer)
    stop_database(lost)
    time.sleep(2)  # what the failover's decision takes on a real site: someone notices
    code, document = _json_cli("failover", "--yes", "-t", str(target_file))
    if code != 0:
        raise SystemExit(f"failover failed: {document}")
    return _replay_step(document)


def put_back(target_file: Path, base_port: int) -> None:
    """After a failover: the lost database started again, rebuilt as a standby, the writer switched back."""
    plan = plan_lab(target_file.parent, base_port)
    restart_database(plan, plan.site(load_target(target_file).replica.name))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # two runs (failback, then the switchover back): two documents
        code = main(["failback", "--switch-back", "--yes", "-t", str(target_file), "-o", "json"])
    if code != 0:
        raise SystemExit(f"failback failed ({code}): {out.getvalue()[-2000:]}")


def measure(
    target_file: Path, incident: Callable[[], dict[str, Any]], ledger_path: Path, rate: float
) -> dict[str, Any]:
    target = load_target(target_file)
    generator = LoadGenerator(LoadSettings(target.traffic.front_door_url, rate=rate, seed=11), ledger_path)
    generator.start()
    started = time.monotonic()
    try:
        replayed = incident()
        time.sleep(1)  # orders after the incident too
    finally:
        summary = generator.stop()
    ledger = read_ledger(ledger_path)
    orders = [f for f in ledger.failures if f.op == "order"]
    verdict = verify_ledger(load_target(target_file), ledger)  # a failover moved the writer
    return {
        "seconds": round(time.monotonic() - started, 1),
        "sent": summary.sent,
        "refused": sum(1 for f in orders if f.http_status is not None),
        "no_answer": sum(1 for f in orders if f.http_status is None),
        "queued": len(ledger.pending),
        "replayed": int(replayed.get("created") or 0) + int(replayed.get("already_present") or 0),
        "duplicated": verdict.duplicated.count,
        "lost": verdict.lost.count,
        "replay_per_s": replayed.get("per_second"),
        "replay_s": replayed.get("seconds"),
        "verify_ledger": verdict.summary(),
        "load_after": load_average(),
    }


def print_table(orders: int, rate: float, rows: Sequence[Mapping[str, Any]]) -> None:
    print(f"\ndegraded mode under load: {orders} seeded orders, {rate:g} orders/s through the front door")
    head = (
        f"{'incident':<9} {'mode':<4} {'sent':>5} {'refused':>7} {'no answer':>9} {'queued':>6} "
        f"{'replayed':>8} {'dup':>4} {'lost':>4} {'replay/s':>8}  load after"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        rate_cell = "-" if r["replay_per_s"] is None else f"{r['replay_per_s']:.1f}"
        print(
            f"{r['incident']:<9} {r['mode']:<4} {r['sent']:>5} {r['refused']:>7} {r['no_answer']:>9} "
            f"{r['queued']:>6} {r['replayed']:>8} {r['duplicated']:>4} {r['lost']:>4} {rate_cell:>8}  "
            f"{r['load_after']}"
        )
    print()
    for r in rows:
        print(f"{r['incident']} ({r['mode']}, {r['seconds']} s): verify --ledger: {r['verify_ledger']}")


def main_benchmark() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2_000)
    parser.add_argument("--base-port", type=int, default=23000)
    parser.add_argument("--lab-dir", type=Path, default=None)
    parser.add_argument("--rate", type=float, default=20.0, help="orders per second during each incident")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"incidents to run, of {', '.join(KINDS)}")
    args = parser.parse_args()
    kinds = [kind for kind in KINDS if kind in args.kinds.split(",")]
    lab_dir = lab_dir_for(args.lab_dir, "order-recovery-bench-intake-")
    ledgers = lab_dir / "ledgers"
    ledgers.mkdir(exist_ok=True)
    print(f"load average before: {load_average()}", flush=True)
    rows: list[dict[str, Any]] = []
    with lab(lab_dir, args.orders, args.base_port, purge=args.lab_dir is None):
        target_file = lab_dir / "lab" / "target.yaml"
        incidents: dict[str, Callable[[], dict[str, Any]]] = {
            "rollback": lambda: rollback(load_target(target_file)),
            "restore": lambda: restore(target_file),
            "failover": lambda: failover(target_file, args.base_port),
        }
        for mode in ("off", "on"):
            if mode == "on" and "failover" in kinds:
                put_back(target_file, args.base_port)
            set_degraded_mode(lab_dir / "lab", args.base_port, mode == "on")
            for kind in kinds:
                print(f"-- {kind}, degraded mode {mode}", flush=True)
                row = measure(target_file, incidents[kind], ledgers / f"{kind}-{mode}.jsonl", args.rate)
                rows.append({"incident": kind, "mode": mode, **row})
                print(json.dumps(rows[-1]), flush=True)  # kept even if a later incident fails
    print_table(args.orders, args.rate, rows)
    print(f"load average at the end: {load_average()}")
    print(json.dumps(rows, indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main_benchmark())
