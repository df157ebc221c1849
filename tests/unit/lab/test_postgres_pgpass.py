"""`write_pgpass` never follows a symlink planted at its temporary name, writes mode 0600, and gives each
reader its own roles only: the lab user never gets the controller's passfile (the superuser's password)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from recovery.errors import EnvironmentProblem
from recovery.lab import render
from recovery.lab.plan import DB_OWNER, DB_REPLICATOR, DB_SUPERUSER, plan_lab
from recovery.lab.postgres import write_pgpass
from recovery.lab.processes import lab_user, run_as

PASSWORDS = {DB_SUPERUSER: "s3cret", DB_OWNER: "s3cret2", DB_REPLICATOR: "s3cret3"}


def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    plan = plan_lab(tmp_path, 24700)
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    plan.pgpass.with_name("pgpass.tmp").symlink_to(victim)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        write_pgpass(lab_user(), plan, PASSWORDS)
    assert victim.read_text() == "untouched\n"


def test_the_pgpass_is_private(tmp_path: Path) -> None:
    plan = plan_lab(tmp_path, 24700)
    leftover = plan.pgpass.with_name("pgpass.tmp")
    leftover.write_text("")
    leftover.chmod(0o644)
    write_pgpass(lab_user(), plan, PASSWORDS)
    assert stat.S_IMODE(plan.pgpass.stat().st_mode) == 0o600


def _roles(path: Path) -> set[str]:
    return set(render.parse_pgpass(path.read_text()))


def test_each_passfile_holds_its_readers_roles_and_belongs_to_its_reader(
    lab_reachable_tmp: Callable[[str], Path],
) -> None:
    lab_dir = lab_reachable_tmp("pgpass")  # the lab user must reach its own files, as in a real lab dir
    plan = plan_lab(lab_dir, 24700)
    user = lab_user()
    write_pgpass(user, plan, PASSWORDS)
    controller = plan.pgpass.stat()
    assert (controller.st_uid, stat.S_IMODE(controller.st_mode)) == (os.geteuid(), 0o600)
    assert _roles(plan.pgpass) == {DB_SUPERUSER, DB_OWNER, DB_REPLICATOR}
    for site in plan.sites:
        for path, roles in ((site.service_pgpass, {DB_OWNER}), (site.replication_pgpass, {DB_REPLICATOR})):
            info = path.stat()
            assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (user.uid, 0o600), path
            assert _roles(path) == roles, path
            run_as(user, ["cat", str(path)], cwd=lab_dir)  # its reader can read it
    if user.switch:  # as root: the lab user is another account, and cannot read the controller's file
        with pytest.raises(EnvironmentProblem, match="Permission denied"):
            run_as(user, ["cat", str(plan.pgpass)], cwd=lab_dir)
