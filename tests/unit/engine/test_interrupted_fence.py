"""Runs that died inside their fence (recovery/engine/interrupted.py), on journals the real journal writer
wrote: what counts, what does not, and what `runs list` then says."""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from engine_helpers import write_target

from recovery.cli.main import main
from recovery.engine.events import PlannedStep, RunFinished, RunStarted, StepFinished, StepStarted
from recovery.engine.interrupted import (
    FENCED_SPANS,
    interrupted_inside_fence,
    open_fences,
    target_open_fences,
)
from recovery.engine.journal import JournalWriter, new_run_id, read_journal
from recovery.runbooks.failover import (
    failover_params,
    failover_runbook,
    switchover_params,
    switchover_runbook,
)
from recovery.runbooks.restore import restore_params, restore_runbook
from recovery.runbooks.rollback import rollback_runbook
from recovery.targets import load_target


def _runbook_steps() -> dict[str, tuple[str, ...]]:
    """The real step names of the fencing runbooks, in order."""
    root = Path(tempfile.mkdtemp(prefix="fence-steps-"))
    try:
        target = load_target(write_target(root))
        restore = restore_runbook(target, restore_params(["orders"], at=None, point=None, restore_id="r1"))
        books = (
            restore,
            rollback_runbook(target, {}),
            switchover_runbook(target, switchover_params(None)),
            failover_runbook(target, failover_params(None, None)),
        )
        return {book.name: tuple(s.name for s in book.steps) for book in books}
    finally:
        shutil.rmtree(root, ignore_errors=True)


STEPS = _runbook_steps()
RESTORE_STEPS, ROLLBACK_STEPS = STEPS["restore"], STEPS["rollback"]
AT = "2026-12-06T20:00:00+00:00"
MOMENTS = (datetime(2026, 12, 6, 20, 0, tzinfo=UTC) + timedelta(seconds=n) for n in itertools.count())


def _journal(
    state_dir: Path,
    runbook: str,
    steps: Sequence[str],
    done: Sequence[str],
    started: str | None,
    *,
    finished: bool = False,
    keep_open: bool = False,
) -> tuple[str, JournalWriter]:
    """Write a run's journal as the engine does: `done` steps finished, `started` begun and cut off."""
    run_id = new_run_id(runbook, next(MOMENTS))  # one second apart: run ids sort by their start
    journal = JournalWriter.create(state_dir, run_id)
    planned = tuple(PlannedStep(name, f"{name} step", True) for name in steps)
    journal(
        RunStarted(
            run_id,
            AT,
            runbook,
            f"recovery.runbooks.{runbook}",
            "lab",
            {},
            planned,
            True,
            "root",
            "host",
            4242,
        )
    )
    total = len(steps)
    for index, name in enumerate(done, 1):
        journal(StepStarted(run_id, AT, name, index, total, f"{name} step", 1))
        journal(StepFinished(run_id, AT, name, index, total, 0.1, {}))
    if started is not None:
        journal(StepStarted(run_id, AT, started, len(done) + 1, total, f"{started} step", 1))
    if finished:
        journal(RunFinished(run_id, AT, "failed", 1.0, started, "external", "it broke"))
    if not keep_open:
        journal.close()  # the process is gone: the kernel dropped its lock
    return run_id, journal


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "state"


def _records(state_dir: Path, run_id: str) -> list[dict[str, object]]:
    return read_journal(state_dir / "runs" / run_id / "journal.jsonl")


@pytest.mark.parametrize(
    "cut_at", ["fence-service", "catch-up-live", "swap-in", "carry-over", "start-service"]
)
def test_a_restore_killed_between_fence_and_start_is_interrupted_inside_its_fence(
    state_dir: Path, cut_at: str
) -> None:
    done = RESTORE_STEPS[: RESTORE_STEPS.index(cut_at)]
    run_id, _ = _journal(state_dir, "restore", RESTORE_STEPS, done, cut_at)

    found = interrupted_inside_fence(_records(state_dir, run_id), lock_held=False)

    assert found is not None
    assert (found.run_id, found.runbook, found.last_step) == (run_id, "restore", cut_at)
    assert found.resume_command("/var/tmp/lab/target.yaml") == (
        f"recovery runs resume {run_id} --target /var/tmp/lab/target.yaml"
    )
    assert found.resume_command() == f"recovery runs resume {run_id} --target lab"
    assert "interrupted" in found.sentence() and "fenced" in found.sentence()


def test_a_rollback_killed_after_its_fence_is_interrupted_inside_it(state_dir: Path) -> None:
    run_id, _ = _journal(state_dir, "rollback", ROLLBACK_STEPS, ROLLBACK_STEPS[:5], "carry-over")
    found = interrupted_inside_fence(_records(state_dir, run_id), lock_held=False)
    assert found is not None and (found.fence_step, found.lift_step) == ("fence", "switch-release")


@pytest.mark.parametrize(
    ("done", "started", "finished", "keep_open"),
    [
        (RESTORE_STEPS[:3], "verify-restored", False, False),  # killed before the fence
        (RESTORE_STEPS[: RESTORE_STEPS.index("record")], "record", False, False),  # after the service started
        (RESTORE_STEPS[:6], "swap-in", True, False),  # failed, and said so: not an interruption
        (RESTORE_STEPS[:4], "fence-service", False, True),  # its process still holds the lock: running
    ],
    ids=["before-fence", "after-lift", "finished-failed", "still-running"],
)
def test_runs_outside_a_fence_or_not_interrupted_are_not_reported(
    state_dir: Path, done: Sequence[str], started: str, finished: bool, keep_open: bool
) -> None:
    run_id, journal = _journal(
        state_dir, "restore", RESTORE_STEPS, done, started, finished=finished, keep_open=keep_open
    )
    try:
        assert target_open_fences(state_dir) == []
        assert interrupted_inside_fence(_records(state_dir, run_id), lock_held=keep_open) is None
    finally:
        journal.close()


def test_a_runbook_without_a_fence_is_never_reported(state_dir: Path) -> None:
    run_id, _ = _journal(state_dir, "backup", ("dump", "upload"), ("dump",), "upload")
    assert interrupted_inside_fence(_records(state_dir, run_id), lock_held=False) is None
    assert interrupted_inside_fence([], lock_held=False) is None


def test_a_later_run_that_lifted_its_fence_supersedes_an_older_interruption(state_dir: Path) -> None:
    old, _ = _journal(state_dir, "restore", RESTORE_STEPS, RESTORE_STEPS[:5], "catch-up-live")
    assert [run.run_id for run in target_open_fences(state_dir)] == [old]
    # A backup since changes nothing: the service is still fenced.
    _journal(state_dir, "backup", ("dump",), ("dump",), None)
    assert [run.run_id for run in target_open_fences(state_dir)] == [old]
    # A later restore started the service again.
    _journal(state_dir, "restore", RESTORE_STEPS, RESTORE_STEPS, None)
    assert target_open_fences(state_dir) == []


def test_open_fences_is_pure_over_records_newest_first(state_dir: Path) -> None:
    first, _ = _journal(state_dir, "rollback", ROLLBACK_STEPS, ROLLBACK_STEPS[:4], "swap-in")
    second, _ = _journal(state_dir, "restore", RESTORE_STEPS, RESTORE_STEPS[:4], "fence-service")
    runs = [(_records(state_dir, second), False), (_records(state_dir, first), False)]
    assert [run.run_id for run in open_fences(runs)] == [second, first]


def test_the_fence_steps_are_the_runbooks_own() -> None:
    for runbook, (fence_step, lift_step) in FENCED_SPANS.items():
        names = STEPS[runbook]
        assert names.index(fence_step) < names.index(lift_step)


def test_runs_list_says_the_service_is_fenced_and_how_to_end_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target_file = write_target(tmp_path)
    state_dir = load_target(target_file).state_dir
    fenced, _ = _journal(state_dir, "restore", RESTORE_STEPS, RESTORE_STEPS[:6], "swap-in")
    plain, _ = _journal(state_dir, "backup", ("dump", "upload"), ("dump",), "upload")
    command = f"recovery runs resume {fenced} --target {target_file}"

    assert main(["runs", "list", "--target", str(target_file)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "SERVICE FENCED" in lines[fenced] and command in lines[fenced]
    assert "FENCED" not in lines[plain]

    assert main(["runs", "list", "--target", str(target_file), "--output", "json"]) == 0
    rows = {row["run_id"]: row for row in json.loads(capsys.readouterr().out)["result"]["runs"]}
    assert rows[fenced]["fenced_resume"] == command
    assert rows[plain]["fenced_resume"] is None
