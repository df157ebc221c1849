"""What the rollback benchmarks share: a lab of their own, torn down also on failure, and the figures
of one failed upgrade with its automatic rollback, read from the two runs' journaled steps."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from recovery.cli.main import main
from recovery.drivers import remote
from recovery.engine import RunResult
from recovery.errors import ExitCode
from recovery.runbooks.rollback import UpgradeOutcome
from recovery.targets.load import load_target
from recovery.targets.model import Target

# The preflight asks the backup stores whether they answer; moto takes any credentials.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "lab")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "lab")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def at(stamp: str | None) -> datetime:
    assert stamp is not None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def steps_line(run: RunResult) -> str:
    return ", ".join(f"{s.name} {s.duration_s:.2f}s" for s in run.steps if s.duration_s is not None)


def lab_dir_for(given: Path | None, prefix: str) -> Path:
    lab_dir = given or Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    lab_dir.mkdir(parents=True, exist_ok=True)
    lab_dir.chmod(0o755)  # the lab user must reach it
    return lab_dir


@contextmanager
def lab(lab_dir: Path, orders: int, base_port: int, *, purge: bool) -> Iterator[Target]:
    """A lab seeded with `orders` orders under lab_dir/lab; always torn down, also when the body fails.
    `purge`: also delete its files and `lab_dir` (about 600 MiB at 10,000 orders), for a directory
    made for this run; a directory the caller named is kept for inspection."""
    where = lab_dir / "lab"
    started = time.monotonic()
    try:
        # Without the watch: its scheduled backups are not what these benchmarks measure.
        up = ["lab", "up", "--lab-dir", str(where), "--base-port", str(base_port), "--orders", str(orders)]
        if main([*up, "--no-watch"]) != ExitCode.OK:
            raise SystemExit("the lab did not come up")
        print(f"lab with {orders} orders up in {time.monotonic() - started:.1f} s", flush=True)
        yield load_target(where / "target.yaml")
    finally:
        remote.close_all()
        main(["lab", "down", "--lab-dir", str(where), *(["--purge"] if purge else [])])
        if purge:
            shutil.rmtree(lab_dir, ignore_errors=True)


def rollback_figures(outcome: UpgradeOutcome) -> dict[str, Any]:
    """Detection (deploy + gates of the failed upgrade) and failed gate -> verified rollback, with the
    rollback's own step figures. The outcome must be a rollback that ended ok."""
    upgrade, rollback = outcome.upgrade, outcome.rollback
    assert upgrade is not None and rollback is not None
    detection = sum(s.duration_s or 0.0 for s in upgrade.steps if s.name in ("deploy", "gates"))
    to_verified = (at(rollback.finished_at) - at(upgrade.finished_at)).total_seconds()
    decide = rollback.step("decide").output or {}
    restore = rollback.step("restore-beside").output or {}
    switch = rollback.step("switch-release").output or {}
    carry = rollback.step("carry-over").output or {}
    return {
        "failed_gate": outcome.failed_gate,
        "reason": outcome.reason,
        "database_restored": bool(decide.get("restore_database")),
        "detection_s": round(detection, 2),
        "failed_gate_to_verified_s": round(to_verified, 2),
        "rollback_steps": steps_line(rollback),
        "upgrade_steps": steps_line(upgrade),
        "restored_ahead": restore.get("built_ahead"),
        "waited_for_copy_s": restore.get("waited_s"),
        "copy_restore_s": restore.get("restore_s"),
        "copy_verify_s": restore.get("verify_s"),
        "switch_playbook_s": switch.get("playbook_seconds"),
        "fence_lifted_after_s": switch.get("fence_lifted_after_s"),
        "needs_a_person_count": int(carry.get("needs_a_person_count") or 0),
        "needs_a_person_file": carry.get("needs_a_person_file"),
        "load_after": load_average(),
    }
