"""The CLI's contract for pipelines: one error line, a documented exit code, a JSON envelope on request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recovery import __version__
from recovery.cli.main import main
from recovery.errors import ExitCode


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == ExitCode.OK
    assert capsys.readouterr().out.strip() == __version__


def test_unknown_option_is_one_line_and_usage_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--no-such-option"])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert err.count("\n") == 1
    assert err.startswith("error[usage]: ")
    assert "--no-such-option" in err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == ExitCode.USAGE
    assert "no-such-command" in capsys.readouterr().err


def test_exit_codes_are_distinct() -> None:
    values = [int(code) for code in ExitCode]
    assert len(values) == len(set(values))


def test_json_output_gets_an_error_envelope(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["no-such-command", "--output", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == ExitCode.USAGE
    assert out["status"] == "error"
    assert out["result"]["code"] == "usage"
    assert out["result"]["exit_code"] == ExitCode.USAGE


def test_error_messages_and_debug_tracebacks_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    # An operator pastes an environment assignment where a target name belongs: the error quotes it.
    code = main(["target", "check", "PGPASSWORD=hunter2", "--debug"])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert "Traceback" in err and "error[target.not_found]" in err
    assert "hunter2" not in err
    assert "PGPASSWORD=<redacted>" in err


def test_the_error_envelope_names_the_command_never_its_option_values(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    secret_path = tmp_path / "no-such-dir" / "target.yaml"
    code = main(["backup", "list", "--target", str(secret_path), "--output", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code != ExitCode.OK
    assert out["command"] == "backup list"
    assert str(secret_path) not in json.dumps(out["command"])
