"""A target file another local user could have written is refused before it is read (exit 2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recovery.cli.main import main
from recovery.errors import ConfigError, ExitCode
from recovery.targets import load_target
from tests.target_files import one_host_site, write_target_file

OTHER_UID = 65534  # nobody


def _target(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    primary = one_host_site(folder, "primary", ssh_port=2201, service_port=8001, db_port=5433)
    standby = one_host_site(folder, "standby", ssh_port=2202, service_port=8002, db_port=5434)
    path = write_target_file(folder, "t", primary, standby)
    path.chmod(0o644)
    return path


def test_a_target_of_this_user_loads(tmp_path: Path) -> None:
    assert load_target(_target(tmp_path)).name == "t"


def test_a_group_writable_target_file_is_refused(tmp_path: Path) -> None:
    path = _target(tmp_path)
    path.chmod(0o664)
    with pytest.raises(ConfigError, match=r"mode 0664.*chmod go-w"):
        load_target(path)


def test_a_target_in_a_world_writable_directory_is_refused(tmp_path: Path) -> None:
    path = _target(tmp_path)
    path.parent.chmod(0o1777)  # sticky like /var/tmp itself: others may still add or swap files
    with pytest.raises(ConfigError, match="another user could change the target"):
        load_target(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a file to another user needs root")
def test_a_file_chowned_to_another_user_is_refused_by_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _target(tmp_path)
    os.chown(path, OTHER_UID, OTHER_UID)
    code = main(["target", "check", str(path)])
    assert code == ExitCode.USAGE == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"owned by uid {OTHER_UID}" in err[0]
