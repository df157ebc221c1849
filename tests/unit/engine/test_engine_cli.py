"""`recovery runs list|show|resume` and run_runbook, through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
from engine_helpers import SAMPLE_COMMAND, calls, sample_runbook, start_child_run, wait_for_step

from recovery.cli.common import OutputFormat
from recovery.cli.main import main
from recovery.cli.runs import run_runbook
from recovery.errors import ExitCode
from recovery.targets import Target

Children = list[subprocess.Popen[bytes]]


def params(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"calls": str(tmp_path / "calls.txt"), "version": "v2", **extra}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main([*argv, "--output", "json"])
    return code, json.loads(capsys.readouterr().out)


def interrupted_run(target_path: Path, tmp_path: Path, children: Children) -> str:
    child = start_child_run(target_path, params(tmp_path, gate=str(tmp_path / "gate")))
    children.append(child)
    run_id = wait_for_step(target_path, "wait", child)
    child.kill()
    child.wait(timeout=10)
    return run_id


def test_list_show_resume_of_an_interrupted_run(
    target_path: Path, target: Target, tmp_path: Path, children: Children, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = interrupted_run(target_path, tmp_path, children)
    t = str(target_path)

    code, listed = run_json(capsys, "runs", "list", "-t", t)
    assert code == ExitCode.OK and listed["schema"] == "order-recovery/v1"
    assert [(r["run_id"], r["status"], r["steps_done"], r["steps"]) for r in listed["result"]["runs"]] == [
        (run_id, "interrupted", 1, 4)
    ]

    assert main(["runs", "show", run_id, "-t", t]) == ExitCode.OK
    shown = capsys.readouterr().out
    assert f"run {run_id}: engine-sample on testsite: interrupted" in shown
    assert "running  wait" in shown and "not_run  apply" in shown
    assert "step.started wait" in shown

    journal = target.state_dir / "runs" / run_id / "journal.jsonl"
    before = journal.read_bytes()
    code, refused = run_json(capsys, "runs", "resume", run_id, "-t", t)
    assert code == ExitCode.NEEDS_CONFIRMATION and refused["result"]["code"] == "confirm.required"
    assert journal.read_bytes() == before  # not confirmed: nothing written, nothing run
    assert len(calls(tmp_path / "calls.txt")) == 2

    (tmp_path / "gate").touch()
    code, resumed = run_json(capsys, "runs", "resume", run_id, "-t", t, "--yes")
    assert code == ExitCode.OK and resumed["status"] == "ok"
    assert resumed["result"]["run_id"] == run_id and resumed["result"]["status"] == "ok"
    assert [s["attempts"] for s in resumed["result"]["steps"]] == [1, 2, 1, 1]
    names = [name for name, _ in calls(tmp_path / "calls.txt")]
    assert names == ["prepare", "wait", "wait", "apply", "verify"]

    code, listed = run_json(capsys, "runs", "list", "-t", t)
    assert listed["result"]["runs"][0]["status"] == "ok"

    code, shown_json = run_json(capsys, "runs", "show", run_id, "-t", t)
    assert len(shown_json["result"]["records"]) == len(journal.read_text().splitlines())
    assert shown_json["result"]["run"]["resumes"] == 1


def test_show_of_a_failed_run_hides_the_traceback(
    target_path: Path, target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as exited:
        run_runbook(
            target,
            sample_runbook(target, params(tmp_path, boom="apply")),
            command=SAMPLE_COMMAND,
            output=OutputFormat.json,
        )
    assert exited.value.exit_code == ExitCode.FAILED
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["status"] == "error" and doc["result"]["code"] == "internal"
    run_id = doc["result"]["run"]["run_id"]
    assert doc["result"]["run"]["failed_step"] == "apply"
    assert captured.err.startswith("error[internal]: ") and captured.err.count("\n") == 1

    assert main(["runs", "show", run_id, "-t", str(target_path)]) == ExitCode.OK
    shown = capsys.readouterr().out
    assert "failed   apply" in shown and "[internal]" in shown
    assert "Traceback" not in shown and "hunter2" not in shown
    journal = (target.state_dir / "runs" / run_id / "journal.jsonl").read_text()
    assert "Traceback" in journal and "hunter2" not in journal


def test_run_runbook_text_mode_shows_progress_on_stderr(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_runbook(
        target, sample_runbook(target, params(tmp_path)), command=SAMPLE_COMMAND, output=OutputFormat.text
    )
    assert result is not None and result.ok
    captured = capsys.readouterr()
    assert f"run {result.run_id}: engine-sample on testsite, 4 steps" in captured.err
    assert "ok 4/4 verify" in captured.err and f"run {result.run_id} ok in" in captured.err
    assert f"run {result.run_id}: engine-sample on testsite: ok" in captured.out


def test_run_runbook_json_mode_is_quiet_on_stderr(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runbook = sample_runbook(target, params(tmp_path))
    run_runbook(target, runbook, command=SAMPLE_COMMAND, output=OutputFormat.json)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert json.loads(captured.out)["result"]["status"] == "ok"


def test_dry_run_through_the_cli_helper_creates_no_files(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(tmp_path.rglob("*"))
    assert (
        run_runbook(
            target,
            sample_runbook(target, params(tmp_path)),
            command=SAMPLE_COMMAND,
            output=OutputFormat.text,
            dry_run=True,
        )
        is None
    )
    assert sorted(tmp_path.rglob("*")) == before
    out = capsys.readouterr().out
    assert "plan: engine-sample on testsite (dry run: nothing was changed)" in out
    assert "3. apply [changes]: apply the chosen release -> primary-app, database orders" in out


def test_list_with_no_runs_and_show_of_unknown_runs(
    target_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "list", "-t", str(target_path)]) == ExitCode.OK
    assert "no runs for target testsite yet" in capsys.readouterr().out

    assert main(["runs", "show", "20261125T221500Z-upgrade-3f2a", "-t", str(target_path)]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith("error[usage]: no run 20261125T221500Z-upgrade-3f2a") and err.count("\n") == 1
    assert main(["runs", "show", "../../etc/passwd", "-t", str(target_path)]) == ExitCode.USAGE
    assert "is not a run id" in capsys.readouterr().err


def test_a_run_from_the_cli_tells_the_team_how_it_went(
    target: Target, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The target names no topic here: the notifier records each message in its outbox as not sent.
    result = run_runbook(
        target, sample_runbook(target, params(tmp_path)), command=SAMPLE_COMMAND, output=OutputFormat.json
    )
    assert result is not None
    outbox = [
        json.loads(line)
        for line in (target.state_dir / "notifications" / "outbox.jsonl").read_text().splitlines()
    ]
    assert [(m["event"], m["status"]) for m in outbox] == [
        ("team/run-started", "no-topic"),
        ("team/run-succeeded", "no-topic"),
    ]
    assert outbox[1]["subject"] == f"[testsite] engine-sample done (run {result.run_id})"
