"""What a run prints: each step once, and a hint after a failure that names the target the run was on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from target_files import write_unit_target

from recovery.cli.commands import CommandProperties
from recovery.cli.common import OutputFormat
from recovery.cli.main import main
from recovery.cli.runs import run_runbook
from recovery.engine import Runbook, RunContext, Step
from recovery.errors import ExitCode
from recovery.targets import load_target

STEPS = ("prepare", "apply", "verify")
COMMAND = CommandProperties("runs-output", "runs-output", takes_lock=True, destructive=False, journaled=True)


def _step(ctx: RunContext) -> dict[str, str]:
    ctx.note(f"{ctx.step} did its part")
    return {"done": ctx.step}


def three_steps() -> Runbook:
    return Runbook(
        name="runs-output",
        params={},
        steps=tuple(Step(name, f"the {name} step", _step, mutating=name == "apply") for name in STEPS),
    )


def test_a_run_prints_each_step_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = load_target(write_unit_target(tmp_path, "elsewhere"))
    result = run_runbook(target, three_steps(), command=COMMAND, output=OutputFormat.text)
    assert result is not None and result.ok
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    for index, step in enumerate(STEPS, 1):
        # The progress line of each step, once; its note is the only other line naming it.
        named = [line for line in lines if f" {step}" in line and "did its part" not in line]
        assert len(named) == 1 and named[0].startswith(f"  ok {index}/3 {step} ("), lines
    assert captured.out == (
        f"run {result.run_id}: runs-output on elsewhere: ok (3 of 3 steps done); "
        f"journal: `recovery runs show {result.run_id} -t elsewhere`\n"
    )


def test_the_hint_after_a_failed_run_names_the_target_as_it_was_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A target named `elsewhere` loaded from a path: `-t elsewhere` (or `-t lab`) would not reach it.
    path = write_unit_target(tmp_path, "elsewhere")
    code = main(["restore", "--domains", "orders", "-t", str(path), "--yes"])
    assert code == ExitCode.REFUSED  # the scope step: nothing listens at the unit target's database
    err = capsys.readouterr().err
    hint = next(line for line in err.splitlines() if line.startswith("journal: "))
    run_id = hint.split()[4]
    assert hint == f"journal: `recovery runs show {run_id} -t {path.resolve()}`"
    assert main(["runs", "show", run_id, "-t", str(path.resolve())]) == ExitCode.OK
    assert f"run {run_id}: restore on elsewhere: failed" in capsys.readouterr().out


def test_an_upgrade_lists_its_steps_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_unit_target(tmp_path, "elsewhere")
    # Nothing listens at the unit target's hosts: preflight refuses, the run has failed at its first step.
    assert main(["upgrade", "--release", "v2", "-t", str(path), "--yes"]) == ExitCode.REFUSED
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    assert [line for line in lines if line.startswith("  failed 1/5 preflight (")], lines
    table_rows = [line for line in lines if re.match(r"\s+\d+\. (ok|failed|not_run)\b", line)]
    assert table_rows == [], "the steps were listed as they ran; the report does not list them again"
    summary = next(line for line in captured.out.splitlines() if line.startswith("upgrade run "))
    run_id = summary.split()[2].rstrip(":")
    assert summary == (
        f"upgrade run {run_id}: failed at preflight; "
        f"journal: `recovery runs show {run_id} -t {path.resolve()}`"
    )
