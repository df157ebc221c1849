"""`recovery backup point` on an RDS target also snapshots the instance (the restore's realtime source)."""

from __future__ import annotations

from pathlib import Path

import pytest
from target_files import rds_target, unit_target

from recovery.errors import UsageError
from recovery.runbooks.backup import backup_params, backup_runbook


def _steps(target: object, point: str | None) -> list[str]:
    runbook = backup_runbook(target, backup_params(["orders", "transactions"], point))  # type: ignore[arg-type]
    return [step.name for step in runbook.steps]


def test_a_named_point_on_rds_adds_the_snapshot_step(tmp_path: Path) -> None:
    assert _steps(rds_target(tmp_path), "before-v2") == [
        "check-database",
        "back-up",
        "verify-copies",
        "snapshot-point",
    ]
    assert "snapshot-point" not in _steps(rds_target(tmp_path), None)
    assert "snapshot-point" not in _steps(unit_target(tmp_path), "before-v2")


def test_a_point_name_rds_cannot_take_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot name an RDS snapshot"):
        _steps(rds_target(tmp_path), "before_v2")
