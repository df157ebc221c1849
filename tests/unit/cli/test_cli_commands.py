"""The command table: every mutating command declared once, and the CLI keeps to what it declares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from target_files import unit_target

from recovery.cli.commands import COMMANDS, check_runbook, confirm_command
from recovery.engine import registered_runbooks
from recovery.errors import ConfirmationRequired
from recovery.runbooks.backup import backup_params, backup_runbook, prune_runbook
from recovery.runbooks.restore import prune_replaced_runbook, restore_params, restore_runbook


def test_every_runbook_a_command_names_is_registered() -> None:
    from recovery.cli.main import build_app

    build_app()  # the whole CLI imports every runbook module, which registers it

    named = {item.runbook for item in COMMANDS.values() if item.runbook is not None}
    assert named <= set(registered_runbooks())


def test_every_mutating_command_is_journaled_and_locked() -> None:
    assert all(item.journaled and item.takes_lock for item in COMMANDS.values())


def test_a_destructive_command_is_refused_without_yes_when_nobody_can_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(ConfirmationRequired, match="dropping 2 replaced copies"):
        confirm_command("restore prune-replaced", "dropping 2 replaced copies", yes=False)
    confirm_command("restore prune-replaced", "dropping 2 replaced copies", yes=True)
    confirm_command("backup run", "backing up", yes=False)  # not destructive: never asks


def test_the_table_matches_the_runbooks_the_commands_run(tmp_path: Path) -> None:
    target = unit_target(tmp_path)
    prune: dict[str, Any] = {"keep_daily": 7, "keep_weekly": 4, "backups": ["x"], "wal_series": []}
    restore = restore_params(["orders"], at=None, point=None, restore_id="r1")
    check_runbook("backup run", backup_runbook(target, backup_params(["orders"])))
    check_runbook("backup prune", prune_runbook(target, prune))
    check_runbook("restore", restore_runbook(target, restore))
    check_runbook("restore prune-replaced", prune_replaced_runbook(target, {"restore_ids": ["r1"]}))
    with pytest.raises(AssertionError, match="runs runbook"):
        check_runbook("restore", prune_runbook(target, prune))
