"""`recovery upgrade` / `recovery rollback`: bad input is one line and exit 2 with nothing run; the
dry run prints the plan and journals nothing; without a TTY a run needs --yes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from target_files import one_host_site, write_target_file

from recovery.cli.main import main
from recovery.errors import ExitCode


def _target(tmp_path: Path) -> Path:
    def site(name: str) -> dict[str, object]:
        return one_host_site(tmp_path, name, ssh_port=1, service_port=21990, db_port=21991)

    return write_target_file(tmp_path, "unitlab", site("primary"), site("standby"))


def test_unknown_release_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["upgrade", "--release", "v9", "-t", str(_target(tmp_path)), "--yes"])
    assert code == ExitCode.USAGE
    assert "unknown release 'v9'" in capsys.readouterr().err
    assert not (tmp_path / "state" / "runs").exists()


def test_junit_in_a_missing_directory_is_refused_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "upgrade",
            "--release",
            "v2",
            "-t",
            str(_target(tmp_path)),
            "--yes",
            "--junit",
            str(tmp_path / "nope" / "r.xml"),
            "--output",
            "json",
        ]
    )
    assert code == ExitCode.USAGE
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "error" and "does not exist" in doc["result"]["message"]
    assert not (tmp_path / "state" / "runs").exists()


def test_dry_run_prints_the_steps_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["rollback", "--to", "v1", "-t", str(_target(tmp_path)), "--dry-run", "--output", "json"]) == 0
    )
    plan = json.loads(capsys.readouterr().out)["result"]
    assert [s["name"] for s in plan["steps"]] == [
        "find-upgrade",
        "decide",
        "restore-beside",
        "fence",
        "swap-in",
        "carry-over",
        "switch-release",
        "verify",
        "replay-intake",
    ]
    assert not (tmp_path / "state" / "runs").exists()


def test_without_a_tty_an_upgrade_needs_yes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upgrade", "--release", "v2", "-t", str(_target(tmp_path))]) == ExitCode.NEEDS_CONFIRMATION
    assert "--yes" in capsys.readouterr().err
