"""An upgrade on an RDS target also snapshots the instance as its restore point (the run in the lab:
tests/lab/test_restore_rds.py); a target that cannot copy that snapshot is refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from target_files import rds_target, unit_target

from recovery.errors import UsageError
from recovery.runbooks.upgrade import upgrade_params, upgrade_runbook
from recovery.targets.model import KeySource, Target

MULTI_REGION_KEY = "arn:aws:kms:eu-west-1:123456789012:key/mrk-0abc"


def _steps(target: Target) -> list[str]:
    return [step.name for step in upgrade_runbook(target, upgrade_params("v2")).steps]


def test_the_snapshot_follows_the_restore_point_on_rds_only(tmp_path: Path) -> None:
    keyed = rds_target(tmp_path).model_copy(
        update={"keys": KeySource(kind="kms", kms_key_id=MULTI_REGION_KEY, region="eu-west-1")}
    )
    assert _steps(keyed) == [
        "preflight",
        "restore-point",
        "snapshot-point",
        "deploy",
        "gates",
        "discard-copy",
    ]
    assert "snapshot-point" not in _steps(unit_target(tmp_path))


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (None, r"needs the target's KMS key \(keys.kind: kms\)"),  # the fixture's keyring
        (KeySource(kind="kms", kms_key_id="arn:aws:kms:eu-west-1:123456789012:key/1234", region="eu-west-1"),
         "is not a multi-region key"),
    ],
)  # fmt: skip
def test_an_rds_target_that_cannot_copy_the_snapshot_is_refused_up_front(
    tmp_path: Path, keys: KeySource | None, message: str
) -> None:
    target = rds_target(tmp_path)
    if keys is not None:
        target = target.model_copy(update={"keys": keys})
    with pytest.raises(UsageError, match=message):
        _steps(target)
