"""Which replaced databases a prune may drop: never one a running or interrupted run still needs."""

from __future__ import annotations

from pathlib import Path

import pytest
from target_files import unit_target

import recovery.runbooks.restore
import recovery.runbooks.rollback  # noqa: F401
from recovery.engine import Engine, Runbook, RunContext, Step
from recovery.restore.database import restore_id_for
from recovery.restore.replaced import needed_by_unfinished_runs, plan_replaced
from recovery.targets.model import Target

UPGRADE_RUN = "20261125T221500Z-upgrade-3f2a"


def _killed(ctx: RunContext) -> None:
    raise KeyboardInterrupt  # what a kill leaves: no step.finished, no run.finished


def _interrupted(target: Target, runbook: Runbook) -> str:
    with pytest.raises(KeyboardInterrupt):
        Engine(target).run(runbook)
    return next(iter(sorted((target.state_dir / "runs").iterdir()))).name


def test_an_interrupted_restore_keeps_its_replaced_database(tmp_path: Path) -> None:
    target = unit_target(tmp_path)
    run_id = _interrupted(
        target,
        Runbook("restore", (Step("scope", "check", _killed),), {"restore_id": "r1", "domains": ["orders"]}),
    )
    needed = needed_by_unfinished_runs(target)
    assert needed == {"r1": run_id}
    plan = plan_replaced(["r1", "r2", "r3"], ["r1", "r2"], needed)
    assert plan.drop == ("r2",)
    assert run_id in plan.keep["r1"] and "unfinished" in plan.keep["r1"]
    assert "after the confirmation" in plan.keep["r3"]  # never confirmed: kept


def test_an_interrupted_rollback_keeps_the_failed_database_its_carry_over_reads(tmp_path: Path) -> None:
    target = unit_target(tmp_path)
    steps = (
        Step("find-upgrade", "find it", lambda ctx: {"upgrade_run": UPGRADE_RUN}, mutating=False),
        Step("carry-over", "carry", _killed),
    )
    run_id = _interrupted(target, Runbook("rollback", steps, {"upgrade_run": None}))
    assert needed_by_unfinished_runs(target) == {restore_id_for(UPGRADE_RUN): run_id}


def test_a_finished_run_needs_nothing(tmp_path: Path) -> None:
    target = unit_target(tmp_path)
    Engine(target).run(Runbook("restore", (Step("scope", "check", lambda ctx: None),), {"restore_id": "r1"}))
    assert needed_by_unfinished_runs(target) == {}
    assert plan_replaced(["r1"], ["r1"], {}).drop == ("r1",)
