"""`recovery release list` and `build`: the catalog always, and per host why its release is unknown."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from target_files import one_host_site, write_target_file

from recovery.cli.main import main
from recovery.errors import ExitCode


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nobody listens there


def _target_with_dead_hosts(tmp_path: Path) -> Path:
    port = _closed_port()

    def site(name: str) -> dict[str, object]:
        return one_host_site(tmp_path, name, ssh_port=port, service_port=26150, db_port=26151)

    return write_target_file(tmp_path, "deadlab", site("primary"), site("standby"))


def test_list_shows_every_release_with_requirements_and_failure(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["release", "list", "--output", "json"]) == ExitCode.OK
    result = json.loads(capsys.readouterr().out)["result"]
    rows = {r["name"]: r for r in result["releases"]}
    assert rows["v2-slow"]["fails"]["stage"] == "latency"
    assert rows["v1"]["fails"] is None
    assert rows["v2-needs-newer-postgres"]["requires"]["postgres_min_major"] == 19
    assert result["hosts"] == [] and result["target"] is None


def test_unreachable_hosts_are_listed_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = _target_with_dead_hosts(tmp_path)
    assert main(["release", "list", "--target", str(target), "--output", "json"]) == ExitCode.OK
    result = json.loads(capsys.readouterr().out)["result"]
    assert len(result["releases"]) == 8
    assert [h["host"] for h in result["hosts"]] == ["primary-app", "standby-app"]
    for host in result["hosts"]:
        assert host["release"] is None
        assert "cannot reach host" in host["reason"]


def test_a_missing_target_still_lists_the_releases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["release", "list", "--target", str(tmp_path / "nope.yaml")]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "v2-bad-migration" in out
    assert "every host's release is unknown" in out and "no description at" in out


def test_build_prints_the_artifact_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["release", "build", "v2", "--out-dir", str(tmp_path)]) == ExitCode.OK
    path = Path(capsys.readouterr().out.strip())
    assert path.is_file() and path.parent == tmp_path


def test_build_of_an_unknown_release_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["release", "build", "v9", "--out-dir", str(tmp_path)]) == ExitCode.USAGE
    assert "known releases: v1, v2" in capsys.readouterr().err
