"""Site failover figures over N rounds on one lab (default 5), each round under load from the load
generator through the front door:

1. switchover from the writer to its standby: the window of refused writes (the ledger's failed requests,
   first to last, and the runbook's own fence-to-writable time) and acknowledged orders lost;
2. loss of the new writer's whole site (every process killed; its standby had stopped receiving a second
   before, so the writer acknowledged orders the standby never got), then `recovery failover`: the time
   from the decision to a verified new writer, and the acknowledged orders not on the new writer;
3. the lost site's processes started again as they were, then `recovery failback`: orders carried over
   and acknowledged orders still lost (goal: 0). The next round starts where this one ends.

Prints every round, then median and worst of each figure.

Usage: python benchmarks/failover.py [--runs 5] [--base-port 24600] [--rate 20] [--lab-dir DIR]
Uses a lab dir under /var/tmp and ports B..B+432; the lab is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rollback_lab import lab, lab_dir_for, load_average

from recovery.cli.main import main
from recovery.engine import journal_path, read_journal, run_ids, summarize
from recovery.errors import ExitCode
from recovery.lab.outage import restart_site, stop_site, walsender_pid
from recovery.lab.plan import plan_lab
from recovery.lab.state import read_state
from recovery.load.generator import LoadGenerator, LoadSettings
from recovery.load.ledger import read_ledger
from recovery.load.ledger_check import verify_ledger
from recovery.targets.load import load_target
from recovery.targets.model import Target


def _run(target_file: Path, *args: str) -> None:
    code = main([*args, "--target", str(target_file), "--yes"])
    if code != ExitCode.OK:
        raise SystemExit(f"`recovery {' '.join(args)}` exited {code}")


def _output(target: Target, runbook: str, step: str) -> dict[str, Any]:
    """The output of `step` in the target's last run of `runbook`."""
    run_id = next(r for r in run_ids(target.state_dir) if f"-{runbook}-" in r)
    return dict(summarize(read_journal(journal_path(target.state_dir, run_id))).step(step).output or {})


def one_round(target_file: Path, rate: float, ledger_dir: Path, n: int) -> dict[str, float]:
    front_door = load_target(target_file).traffic.front_door_url
    figures: dict[str, float] = {}

    ledger_path = ledger_dir / f"switchover-{n}.jsonl"
    with LoadGenerator(LoadSettings(front_door, rate=rate), ledger_path):
        time.sleep(1.5)
        _run(target_file, "switchover")
        time.sleep(1.5)
    target = load_target(target_file)
    ledger = read_ledger(ledger_path)
    window = ledger.error_window
    figures["switchover_refused_window_s"] = window.seconds if window else 0.0
    figures["switchover_failed_requests"] = window.failures if window else 0
    figures["switchover_runbook_refused_s"] = float(
        _output(target, "switchover", "record")["writes_refused_seconds"]
    )
    figures["switchover_orders_lost"] = verify_ledger(target, ledger).lost.count

    plan = plan_lab(target_file.parent, _base_port(target_file))
    lost = plan.site(target.writer)
    ledger_path = ledger_dir / f"site-loss-{n}.jsonl"
    with LoadGenerator(LoadSettings(front_door, rate=rate), ledger_path):
        time.sleep(1.0)
        # The writer stops sending WAL a second before its site is lost (its walsender frozen), so it
        # acknowledges orders the standby never gets.
        sender = walsender_pid(target)
        os.kill(sender, signal.SIGSTOP)
        try:
            time.sleep(1.0)
            command = stop_site(plan, lost)
        finally:  # never leave a frozen process behind, whatever failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(sender, signal.SIGCONT)
        _run(target_file, "failover")
        time.sleep(1.0)
    target = load_target(target_file)
    ledger = read_ledger(ledger_path)
    record = _output(target, "failover", "record")
    figures["failover_decision_to_verified_s"] = float(record["decision_to_verified_seconds"])
    figures["failover_acked_not_on_standby"] = verify_ledger(target, ledger).lost.count

    restart_site(plan, lost, command)
    _run(target_file, "failback")
    target = load_target(target_file)
    carried = _output(target, "failback", "carry-over")
    figures["failback_orders_carried"] = int(carried["orders_inserted"])
    figures["failback_needs_a_person"] = int(carried["needs_a_person"])
    figures["failback_orders_lost"] = verify_ledger(target, ledger).lost.count
    return figures


def _base_port(target_file: Path) -> int:
    state = read_state(target_file.parent / "lab.json")
    if state is None:
        raise SystemExit(f"no lab.json beside {target_file}")
    return state.base_port


def main_(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--base-port", type=int, default=24600)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--orders", type=int, default=10000)
    parser.add_argument("--lab-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    lab_dir = lab_dir_for(args.lab_dir, "order-recovery-failover-bench-")
    rounds: list[dict[str, float]] = []
    with (
        lab(lab_dir, args.orders, args.base_port, purge=args.lab_dir is None),
        tempfile.TemporaryDirectory() as ledgers,
    ):
        target_file = lab_dir / "lab" / "target.yaml"
        for n in range(1, args.runs + 1):
            figures = one_round(target_file, args.rate, Path(ledgers), n)
            rounds.append(figures)
            print(f"round {n}: " + ", ".join(f"{k} {v:g}" for k, v in figures.items()), flush=True)
    print(f"\n{len(rounds)} rounds at {args.rate:g} orders/s (load average after: {load_average()})")
    worst_is_min = {"failback_orders_carried"}
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        worst = min(values) if key in worst_is_min else max(values)
        print(f"  {key:<36} median {statistics.median(values):>8g}   worst {worst:>8g}")
    return 0


if __name__ == "__main__":
    sys.exit(main_(sys.argv[1:]))
