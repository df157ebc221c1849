"""How long a rollback takes, from the failed gate to the verified previous release, on a real lab.

Builds its own lab (default 1,000,000 orders), then measures two failed upgrades with automatic
rollback:
  database   v1 -> v2-unhealthy: the schema changed, so the database goes back to the restore point
             (the copy restored and verified while the release was deployed, fence, swap, carry over),
             then the code (goal <= 60 s)
  code-only  v2 -> v2-crash: same schema, clean data: only `current` is switched back (goal <= 15 s)
Detection time (deploy + gates of the failed upgrade) is reported separately, and so are the restore
ahead's own figures (how long the copy took, how long the rollback still waited for it). Prints
figures and the load average before and after; asserts nothing.
Usage: .venv/bin/python benchmarks/rollback.py [--orders N] [--base-port B] [--lab-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rollback_lab import lab, lab_dir_for, load_average, rollback_figures

from recovery.runbooks.rollback import upgrade_with_rollback
from recovery.runbooks.upgrade import upgrade_params
from recovery.targets.model import Target


def measure(target: Target, case: str, release: str) -> dict[str, Any]:
    params = upgrade_params(release, watch_seconds=5, health_timeout=10)
    outcome = upgrade_with_rollback(target, params, auto_rollback=True)
    if outcome.status != "rolled_back" or outcome.upgrade is None or outcome.rollback is None:
        raise SystemExit(f"{case}: expected a clean rollback, got {outcome.status}: {outcome.reason}")
    return {"case": case, "release": release, **rollback_figures(outcome)}


def main_benchmark() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--base-port", type=int, default=21200)
    parser.add_argument("--lab-dir", type=Path, default=None)
    args = parser.parse_args()
    lab_dir = lab_dir_for(args.lab_dir, "order-recovery-bench-rollback-")
    print(f"load average before: {load_average()}", flush=True)
    figures = []
    with lab(lab_dir, args.orders, args.base_port, purge=args.lab_dir is None) as target:
        figures.append(measure(target, "database", "v2-unhealthy"))
        upgraded = upgrade_with_rollback(
            target, upgrade_params("v2", watch_seconds=3, health_timeout=30), auto_rollback=False
        )
        if upgraded.status != "upgraded":
            raise SystemExit(f"v1 -> v2 did not succeed: {upgraded.reason}")
        figures.append(measure(target, "code-only", "v2-crash"))
    goals = {"database": 60.0, "code-only": 15.0}
    print(f"\nrollback at {args.orders} orders (failed gate -> verified previous release)")
    for row in figures:
        goal = goals[row["case"]]
        print(
            f"  {row['case']:<10} {row['release']:<14} gate {row['failed_gate']:<8} "
            f"detected in {row['detection_s']:>6.2f} s   rolled back and verified in "
            f"{row['failed_gate_to_verified_s']:>6.2f} s (goal <= {goal:.0f} s)"
        )
        print(f"             steps: {row['rollback_steps']}")
        print(f"             upgrade: {row['upgrade_steps']}")
        if row["database_restored"]:
            print(
                f"             copy restored ahead: {row['restored_ahead']} "
                f"(restore {row['copy_restore_s']} s, "
                f"verify {row['copy_verify_s']} s, the rollback waited {row['waited_for_copy_s']} s); "
                f"fence lifted {row['fence_lifted_after_s']} s into the switch"
            )
        print(f"             load average after: {row['load_after']}")
    print(f"load average at the end: {load_average()}")
    print(json.dumps(figures, indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main_benchmark())
