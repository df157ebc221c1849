"""`write_pgpass` never follows a symlink planted at its temporary name, and writes mode 0600."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from recovery.lab.plan import plan_lab
from recovery.lab.postgres import write_pgpass
from recovery.lab.processes import lab_user


def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    plan = plan_lab(tmp_path, 24700)
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    plan.pgpass.with_name("pgpass.tmp").symlink_to(victim)
    with pytest.raises(OSError, match="Too many levels of symbolic links"):
        write_pgpass(lab_user(), plan, {"postgres": "s3cret", "orders": "s3cret2"})
    assert victim.read_text() == "untouched\n"


def test_the_pgpass_is_private(tmp_path: Path) -> None:
    plan = plan_lab(tmp_path, 24700)
    leftover = plan.pgpass.with_name("pgpass.tmp")
    leftover.write_text("")
    leftover.chmod(0o644)
    write_pgpass(lab_user(), plan, {"postgres": "s3cret", "orders": "s3cret2"})
    assert stat.S_IMODE(plan.pgpass.stat().st_mode) == 0o600
