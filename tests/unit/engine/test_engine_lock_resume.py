"""The lock and resume, against real processes: a second run is refused, a kill leaves no stale lock,
and an interrupted run resumes without rerunning finished steps."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from engine_helpers import SAMPLE, calls, sample_runbook, start_child_run, wait_for_step

from recovery.engine import Engine, build_runbook, read_holder
from recovery.engine.journal import is_running
from recovery.errors import LockHeld, PreconditionFailed, UsageError
from recovery.targets import Target, load_target

Children = list[subprocess.Popen[bytes]]


def params(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"calls": str(tmp_path / "calls.txt"), "version": "v2", **extra}


def kill(child: subprocess.Popen[bytes]) -> None:
    child.kill()  # SIGKILL: no finally blocks, no cleanup, only what the kernel does
    child.wait(timeout=10)


def test_a_second_mutating_run_is_refused_naming_the_holder(
    target_path: Path, target: Target, tmp_path: Path, children: Children
) -> None:
    gate = tmp_path / "gate"
    child = start_child_run(target_path, params(tmp_path, gate=str(gate)))
    children.append(child)
    holder_run = wait_for_step(target_path, "wait", child)

    journals_before = sorted((target.state_dir / "runs").iterdir())
    with pytest.raises(LockHeld) as raised:
        Engine(target).run(sample_runbook(target, params(tmp_path, calls=str(tmp_path / "mine.txt"))))
    assert holder_run in raised.value.message and f"pid {child.pid}" in raised.value.message
    assert raised.value.exit_code == 4
    assert sorted((target.state_dir / "runs").iterdir()) == journals_before  # refused: nothing written
    assert not (tmp_path / "mine.txt").exists()

    holder = read_holder(target.state_dir / "locks" / "testsite.lock")
    assert holder is not None and holder.run_id == holder_run and holder.runbook == SAMPLE

    # A read-only runbook needs no lock and runs beside the mutating one.
    assert Engine(target).run(build_runbook("engine-readonly", target, params(tmp_path))).ok
    # An interrupted-looking run that is in fact alive cannot be resumed behind its back.
    with pytest.raises(PreconditionFailed, match="still running"):
        Engine(target).resume(holder_run)

    gate.touch()
    assert child.wait(timeout=30) == 0
    assert Engine(target).run(sample_runbook(target, params(tmp_path))).ok


def test_no_stale_lock_after_a_kill(
    target_path: Path, target: Target, tmp_path: Path, children: Children
) -> None:
    child = start_child_run(target_path, params(tmp_path, gate=str(tmp_path / "never")))
    children.append(child)
    wait_for_step(target_path, "wait", child)
    kill(child)

    result = Engine(target).run(sample_runbook(target, params(tmp_path)))
    assert result.ok
    holder = read_holder(target.state_dir / "locks" / "testsite.lock")
    assert holder is None  # released cleanly by the run that finished


def test_resume_after_sigkill_skips_finished_steps(
    target_path: Path, target: Target, tmp_path: Path, children: Children
) -> None:
    gate = tmp_path / "gate"
    child = start_child_run(target_path, params(tmp_path, gate=str(gate)))
    children.append(child)
    run_id = wait_for_step(target_path, "wait", child)
    kill(child)

    journal = target.state_dir / "runs" / run_id / "journal.jsonl"
    before = journal.read_bytes()
    assert not is_running(journal)
    assert [name for name, pid in calls(tmp_path / "calls.txt")] == ["prepare", "wait"]

    gate.touch()
    result = Engine(target).resume(run_id)  # would raise LockHeld if the kill had left the lock held

    assert result.run_id == run_id and result.status == "ok" and result.resumes == 1
    assert calls(tmp_path / "calls.txt") == [
        ("prepare", child.pid),
        ("wait", child.pid),  # before the kill
        ("wait", os.getpid()),
        ("apply", os.getpid()),
        ("verify", os.getpid()),  # the resume
    ]
    assert [(s.name, s.attempts) for s in result.steps] == [
        ("prepare", 1),
        ("wait", 2),
        ("apply", 1),
        ("verify", 1),
    ]
    assert result.step("apply").output == {"applied": "v2", "after": "v2"}  # prepare's recorded output

    after = journal.read_bytes()
    assert after.startswith(before)  # append-only: history untouched
    records = [json.loads(line) for line in after.splitlines()]
    assert [r["seq"] for r in records] == list(range(len(records)))
    resumed = next(r for r in records if r["event"] == "run.resumed")
    assert resumed["reused"] == ["prepare"] and resumed["pid"] == os.getpid()
    assert records[-1]["event"] == "run.finished" and records[-1]["status"] == "ok"

    with pytest.raises(PreconditionFailed, match="already finished"):
        Engine(target).resume(run_id)
    assert journal.read_bytes() == after


def test_a_failed_run_cannot_be_resumed(target: Target, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="could not reach"):
        Engine(target).run(sample_runbook(target, params(tmp_path, fail="wait")))
    run_id = next((target.state_dir / "runs").iterdir()).name
    with pytest.raises(PreconditionFailed, match=r"already finished \(failed\)"):
        Engine(target).resume(run_id)


def test_resume_refuses_a_run_whose_parameters_held_a_secret(
    target_path: Path, target: Target, tmp_path: Path, children: Children
) -> None:
    child = start_child_run(target_path, params(tmp_path, gate=str(tmp_path / "never"), db_password="pw"))
    children.append(child)
    run_id = wait_for_step(target_path, "wait", child)
    kill(child)
    with pytest.raises(PreconditionFailed, match="secret among its parameters"):
        Engine(target).resume(run_id)
    assert [name for name, _ in calls(tmp_path / "calls.txt")] == ["prepare", "wait"]


def test_resume_of_unknown_or_malformed_run_ids(target: Target) -> None:
    with pytest.raises(UsageError, match="no run"):
        Engine(target).resume("20261125T221500Z-engine-sample-abcd")
    with pytest.raises(UsageError, match="not a run id"):
        Engine(target).resume("../../etc")


def test_resume_belongs_to_the_target_that_ran_it(
    target_path: Path, target: Target, tmp_path: Path, children: Children
) -> None:
    child = start_child_run(target_path, params(tmp_path, gate=str(tmp_path / "never")))
    children.append(child)
    run_id = wait_for_step(target_path, "wait", child)
    kill(child)
    other = target_path.read_text().replace("name: testsite", "name: othersite")
    (tmp_path / "other.yaml").write_text(other)
    with pytest.raises(UsageError, match="belongs to target testsite"):
        Engine(load_target(tmp_path / "other.yaml")).resume(run_id)
