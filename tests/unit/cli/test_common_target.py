"""Destructive commands name the target they change, and refuse the implicit default `lab` when another
target is known (a forgotten `-t` in an operator's shell)."""

from __future__ import annotations

from pathlib import Path

import pytest
from target_files import write_unit_target

from recovery.cli.common import known_targets
from recovery.cli.main import main
from recovery.errors import ExitCode


@pytest.fixture
def lab_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lab's description where the default `lab` resolves, and an empty inventories/."""
    lab_dir = tmp_path / "lab"
    lab_dir.mkdir()
    monkeypatch.setattr("recovery.targets.load.DEFAULT_LAB_DIR", lab_dir)
    monkeypatch.setattr("recovery.targets.load.INVENTORIES", tmp_path / "inventories")
    (tmp_path / "inventories" / "lab" / "group_vars").mkdir(parents=True)  # as the repository has it
    return write_unit_target(lab_dir, "lab")


def _add_inventory_target(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / "inventories" / name
    folder.mkdir(parents=True)
    return write_unit_target(folder, name)


def _runs(lab_file: Path) -> list[Path]:
    runs = lab_file.parent / "state" / "runs"
    return sorted(runs.iterdir()) if runs.is_dir() else []


DESTRUCTIVE = [
    ("restore", ["restore", "--domains", "orders"]),
    ("upgrade", ["upgrade", "--release", "v2"]),
]


def test_known_targets_are_the_lab_and_the_inventories(lab_file: Path, tmp_path: Path) -> None:
    assert known_targets() == ["lab"]
    _add_inventory_target(tmp_path, "production")
    assert known_targets() == ["lab", "production"]
    lab_file.unlink()
    assert known_targets() == ["production"]


@pytest.mark.parametrize("command,argv", DESTRUCTIVE)
def test_a_destructive_command_on_the_implicit_default_is_refused_when_two_targets_are_known(
    lab_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, argv: list[str]
) -> None:
    _add_inventory_target(tmp_path, "production")
    assert main([*argv, "--yes"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"error[target.not_named]: {command} changes a target and -t was not given")
    assert "2 targets are known (lab, production): pass -t NAME" in err
    assert _runs(lab_file) == [], "refused before anything ran or was journaled"


def test_naming_the_default_explicitly_passes_and_the_question_names_it(
    lab_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_inventory_target(tmp_path, "production")
    # Without --yes and without a TTY: the confirmation is what refuses, and it names the target.
    assert main(["restore", "--domains", "orders", "-t", "lab"]) == ExitCode.NEEDS_CONFIRMATION
    err = capsys.readouterr().err
    assert "replaces them in database orders (kept as schema replaced_" in err
    assert f"on target lab ({lab_file.resolve()}) is destructive" in err


def test_one_known_target_keeps_the_default_and_says_it_is_the_default(
    lab_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["restore", "--domains", "orders"]) == ExitCode.NEEDS_CONFIRMATION
    err = capsys.readouterr().err
    assert f"on target lab ({lab_file.resolve()}), the default: -t was not given is destructive" in err


def test_the_plan_names_the_target_it_would_change(
    lab_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    production = _add_inventory_target(tmp_path, "production")
    # A dry run changes nothing, so the implicit default is not refused there; the plan says it. (A
    # rollback's plan needs no running part; a restore's dry run asks live for its scope first.)
    assert main(["rollback", "--dry-run"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"changes target lab ({lab_file.resolve()}), the default: -t was not given\n" in out
    assert main(["rollback", "--dry-run", "-t", "production"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"changes target production ({production.resolve()})\n" in out
