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
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from recovery.cli.main import main
from recovery.drivers import remote
from recovery.engine import RunResult
from recovery.errors import ExitCode
from recovery.runbooks.rollback import upgrade_with_rollback
from recovery.runbooks.upgrade import upgrade_params
from recovery.targets.load import load_target
from recovery.targets.model import Target


def _at(stamp: str | None) -> datetime:
    assert stamp is not None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _steps(run: RunResult) -> str:
    return ", ".join(f"{s.name} {s.duration_s:.2f}s" for s in run.steps if s.duration_s is not None)


def measure(target: Target, case: str, release: str) -> dict[str, Any]:
    params = upgrade_params(release, watch_seconds=5, health_timeout=10)
    outcome = upgrade_with_rollback(target, params, auto_rollback=True)
    if outcome.status != "rolled_back" or outcome.upgrade is None or outcome.rollback is None:
        raise SystemExit(f"{case}: expected a clean rollback, got {outcome.status}: {outcome.reason}")
    upgrade, rollback = outcome.upgrade, outcome.rollback
    detection = sum(s.duration_s or 0.0 for s in upgrade.steps if s.name in ("deploy", "gates"))
    to_verified = (_at(rollback.finished_at) - _at(upgrade.finished_at)).total_seconds()
    decide = rollback.step("decide").output or {}
    restore = rollback.step("restore-beside").output or {}
    switch = rollback.step("switch-release").output or {}
    return {
        "case": case,
        "release": release,
        "failed_gate": outcome.failed_gate,
        "database_restored": bool(decide.get("restore_database")),
        "detection_s": round(detection, 2),
        "failed_gate_to_verified_s": round(to_verified, 2),
        "rollback_steps": _steps(rollback),
        "upgrade_steps": _steps(upgrade),
        "restored_ahead": restore.get("built_ahead"),
        "waited_for_copy_s": restore.get("waited_s"),
        "copy_restore_s": restore.get("restore_s"),
        "copy_verify_s": restore.get("verify_s"),
        "switch_playbook_s": switch.get("playbook_seconds"),
        "fence_lifted_after_s": switch.get("fence_lifted_after_s"),
        "load_after": _load(),
    }


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main_benchmark() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--base-port", type=int, default=41200)
    parser.add_argument("--lab-dir", type=Path, default=None)
    args = parser.parse_args()
    lab_dir = args.lab_dir or Path(tempfile.mkdtemp(prefix="order-recovery-bench-rollback-", dir="/var/tmp"))
    lab_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.chmod(0o755)  # the lab user must reach it
    lab = lab_dir / "lab"
    print(f"load average before: {_load()}", flush=True)
    started = time.monotonic()
    if main(["lab", "up", "--lab-dir", str(lab), "--base-port", str(args.base_port),
             "--orders", str(args.orders)]) != ExitCode.OK:
        return 1
    print(f"lab with {args.orders} orders up in {time.monotonic() - started:.1f} s", flush=True)
    figures = []
    try:
        target = load_target(lab / "target.yaml")
        figures.append(measure(target, "database", "v2-unhealthy"))
        upgraded = upgrade_with_rollback(target, upgrade_params("v2", watch_seconds=3, health_timeout=30),
                                         auto_rollback=False)
        if upgraded.status != "upgraded":
            raise SystemExit(f"v1 -> v2 did not succeed: {upgraded.reason}")
        figures.append(measure(target, "code-only", "v2-crash"))
    finally:
        remote.close_all()
        main(["lab", "down", "--lab-dir", str(lab)])
    goals = {"database": 60.0, "code-only": 15.0}
    print(f"\nrollback at {args.orders} orders (failed gate -> verified previous release)")
    for row in figures:
        goal = goals[row["case"]]
        print(f"  {row['case']:<10} {row['release']:<14} gate {row['failed_gate']:<8} "
              f"detected in {row['detection_s']:>6.2f} s   rolled back and verified in "
              f"{row['failed_gate_to_verified_s']:>6.2f} s (goal <= {goal:.0f} s)")
        print(f"             steps: {row['rollback_steps']}")
        print(f"             upgrade: {row['upgrade_steps']}")
        if row["database_restored"]:
            print(f"             copy restored ahead: {row['restored_ahead']} "
                  f"(restore {row['copy_restore_s']} s, "
                  f"verify {row['copy_verify_s']} s, the rollback waited {row['waited_for_copy_s']} s); "
                  f"fence lifted {row['fence_lifted_after_s']} s into the switch")
        print(f"             load average after: {row['load_after']}")
    print(f"load average at the end: {_load()}")
    print(json.dumps(figures, indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main_benchmark())
