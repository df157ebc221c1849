"""The realtime backup runbooks as the CLI runs them: their plans, the command table, and the restart of
the primary that setting up archiving may cause asked for first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from target_files import unit_target, write_unit_target

from recovery.cli.commands import check_runbook, properties
from recovery.cli.main import main
from recovery.errors import ExitCode
from recovery.runbooks.realtime_backup import realtime_runbook, wal_archive_runbook


def test_the_command_table_matches_the_runbooks(tmp_path: Path) -> None:
    target = unit_target(tmp_path)
    realtime = check_runbook("backup realtime", realtime_runbook(target, {}))
    archiving = check_runbook("backup setup-archiving", wal_archive_runbook(target, {}))
    assert (realtime.destructive, archiving.destructive) == (False, True)
    assert properties("backup setup-archiving").runbook == "wal-archive"


def test_the_realtime_backup_checks_archiving_before_it_streams_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_unit_target(tmp_path)
    assert main(["backup", "realtime", "--target", str(path), "--dry-run", "--output", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)["result"]
    assert [(s["name"], s["mutating"]) for s in plan["steps"]] == [
        ("check-archiving", False),
        ("base-backup", True),
        ("verify-copies", False),
    ]
    assert not (tmp_path / "state" / "runs").exists(), "a dry run journals nothing"


def test_setting_up_archiving_is_refused_without_yes_when_nobody_can_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    path = write_unit_target(tmp_path)
    assert main(["backup", "setup-archiving", "--target", str(path)]) == ExitCode.NEEDS_CONFIRMATION
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error[confirm.required]: setting up WAL archiving may restart the primary database of unit on "
        f"target {path} is destructive; rerun with --yes to confirm (no TTY to ask on)"
    ]
    assert not (tmp_path / "state" / "runs").exists(), "nothing was run"
