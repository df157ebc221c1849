"""The SSH control-socket directory is created private, and one someone else made is refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from recovery.drivers.ansible import private_control_dir
from recovery.errors import EnvironmentProblem


def test_a_new_control_directory_is_private(tmp_path: Path) -> None:
    made = private_control_dir(tmp_path / "cp")
    info = made.lstat()
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
    assert private_control_dir(made) == made  # an existing private one is reused


def test_an_open_control_directory_is_refused(tmp_path: Path) -> None:
    planted = tmp_path / "cp"
    planted.mkdir()
    planted.chmod(0o777)
    with pytest.raises(EnvironmentProblem, match="not a private directory"):
        private_control_dir(planted)


def test_a_symlink_in_place_of_the_directory_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "cp").symlink_to(elsewhere)
    with pytest.raises(EnvironmentProblem, match="not a private directory"):
        private_control_dir(tmp_path / "cp")


@pytest.mark.skipif(os.geteuid() != 0, reason="handing a directory to another user needs root")
def test_a_control_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    planted = tmp_path / "cp"
    planted.mkdir(mode=0o700)
    os.chown(planted, 65534, 65534)
    with pytest.raises(EnvironmentProblem, match="owner uid 65534"):
        private_control_dir(planted)
