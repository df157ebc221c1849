"""The realtime kind on RDS against moto: what RDS offers, and the scratch instance a recovery makes,
reaches and always deletes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict
from rds_sites import PRIMARY_ID, PRIMARY_REGION, STANDBY_REGION, RdsSites, build_sites, recorder_for
from target_files import rds_target

from recovery.drivers.aws import AwsDriver
from recovery.drivers.rds import SCRATCH_PREFIX, RdsDriver
from recovery.drivers.secrets import read_credentials
from recovery.errors import UsageError
from recovery.restore.rds_source import (
    RdsRestore,
    observe_rds_restores,
    point_snapshot_id,
    rds_recover_to,
    take_point_snapshot,
)
from recovery.restore.selection import DomainChoice
from recovery.targets.model import KeySource, Target


@pytest.fixture
def sites(aws: AwsDriver) -> RdsSites:
    return build_sites(aws)


@pytest.fixture
def target(tmp_path: Path, sites: RdsSites) -> Target:
    return rds_target(tmp_path)


def _choice(restore: RdsRestore) -> DomainChoice:
    return DomainChoice("orders", restore.backup_id, "realtime", restore.copy, "chosen for the test")


def _scratch_instances(aws: AwsDriver) -> list[str]:
    found = aws.client("rds", PRIMARY_REGION).describe_db_instances()["DBInstances"]
    return [i["DBInstanceIdentifier"] for i in found if i["DBInstanceIdentifier"].startswith(SCRATCH_PREFIX)]


def test_the_live_instance_window_and_the_point_snapshots_are_observed(
    aws: AwsDriver, target: Target
) -> None:
    RdsDriver(aws, PRIMARY_REGION).create_snapshot(PRIMARY_ID, point_snapshot_id("before-v2"))
    restores = observe_rds_restores(target, "before-v2", aws)
    (local,) = restores.windows
    instance = RdsDriver(aws, PRIMARY_REGION).describe(PRIMARY_ID)
    assert (local.copy, local.source, local.region) == ("local", PRIMARY_ID, PRIMARY_REGION)
    # moto reports "now" as the latest restorable time at every call
    assert instance.latest_restorable_time is not None
    assert (
        instance.created_at is not None
        and instance.created_at < local.latest <= instance.latest_restorable_time
    )
    assert local.earliest == instance.created_at  # younger than its 7 days of retention
    ((copy, region, snapshot_id),) = [(p.copy, p.region, p.snapshot_id) for p in restores.points]
    assert (copy, region, snapshot_id) == ("local", PRIMARY_REGION, "order-recovery-point-before-v2")


def test_a_recovery_reaches_the_scratch_instance_with_its_own_secret_and_deletes_it(
    aws: AwsDriver, target: Target, sites: RdsSites
) -> None:
    calls = recorder_for(aws, "rds", "secretsmanager")
    with rds_recover_to(target, _choice(RdsRestore("pitr", "local", "latest")), aws=aws) as conninfo:
        (scratch_id,) = _scratch_instances(aws)
        scratch = RdsDriver(aws, PRIMARY_REGION).describe(scratch_id)
        params = conninfo_to_dict(conninfo)
        assert (params["host"], int(str(params["port"]))) == (scratch.address, scratch.port)
        assert params["dbname"] == "orders" and "password" not in params
        assert scratch.master_secret_arn is not None
        credentials = read_credentials(aws, PRIMARY_REGION, scratch.master_secret_arn)
        passfile = Path(str(params["passfile"]))
        assert passfile.read_text().endswith(f":{credentials.password.get_secret_value()}\n")
        assert params["user"] == credentials.username
    assert _scratch_instances(aws) == []
    assert not passfile.exists()
    made = [op for op in calls.operations() if not op.startswith("Describe")]
    assert made[0] == "RestoreDBInstanceToPointInTime" and made[-1] == "DeleteDBInstance"
    assert "GetSecretValue" in made
    (restore,) = calls.params("RestoreDBInstanceToPointInTime")
    assert restore["SourceDBInstanceIdentifier"] == PRIMARY_ID
    assert restore["UseLatestRestorableTime"] is True
    assert restore["DBSubnetGroupName"] == sites.primary.subnet_group
    assert restore["VpcSecurityGroupIds"] == [sites.primary.security_group]


def test_the_scratch_instance_is_deleted_when_the_copy_fails(aws: AwsDriver, target: Target) -> None:
    choice = _choice(RdsRestore("pitr", "local", "latest"))
    with pytest.raises(RuntimeError, match="the copy failed"), rds_recover_to(target, choice, aws=aws):
        assert len(_scratch_instances(aws)) == 1
        raise RuntimeError("the copy failed")
    assert _scratch_instances(aws) == []


def test_a_restore_point_is_recovered_from_its_snapshot(aws: AwsDriver, target: Target) -> None:
    snapshot = point_snapshot_id("before-v2")
    RdsDriver(aws, PRIMARY_REGION).create_snapshot(PRIMARY_ID, snapshot)
    calls = recorder_for(aws, "rds")
    stamp = datetime.now(UTC).isoformat()
    with rds_recover_to(target, _choice(RdsRestore("snapshot", "local", f"{snapshot}@{stamp}")), aws=aws):
        pass
    (restored,) = calls.params("RestoreDBInstanceFromDBSnapshot")
    assert restored["DBSnapshotIdentifier"] == snapshot
    assert restored["DBInstanceIdentifier"].startswith(SCRATCH_PREFIX)
    assert _scratch_instances(aws) == []


def test_a_restore_point_is_a_snapshot_copied_into_the_other_region(aws: AwsDriver, target: Target) -> None:
    kms = aws.kms(PRIMARY_REGION)
    made = kms.create_key(MultiRegion=True, Description="site key")["KeyMetadata"]
    key = made["Arn"]
    kms.replicate_key(KeyId=made["KeyId"], ReplicaRegion=STANDBY_REGION)
    with_key = target.model_copy(
        update={"keys": KeySource(kind="kms", kms_key_id=key, region=PRIMARY_REGION)}
    )
    calls = recorder_for(aws, "rds")
    taken = take_point_snapshot(with_key, "before-v2", aws)
    assert [(region, op) for region, op, _ in calls.calls if not op.startswith("Describe")] == [
        (PRIMARY_REGION, "CreateDBSnapshot"),
        (STANDBY_REGION, "CopyDBSnapshot"),
    ]
    (copied,) = calls.params("CopyDBSnapshot")
    assert copied["KmsKeyId"] == key.replace(f":{PRIMARY_REGION}:", f":{STANDBY_REGION}:")
    assert copied["SourceDBSnapshotIdentifier"] == taken.local
    assert taken.snapshot_id == "order-recovery-point-before-v2"
    # The restore sees it in both regions; taking the point again changes nothing.
    assert {p.copy for p in observe_rds_restores(with_key, "before-v2", aws).points} == {"local", "remote"}
    calls.clear()
    assert take_point_snapshot(with_key, "before-v2", aws) == taken
    assert all(op.startswith("Describe") for op in calls.operations())


def test_a_target_without_a_kms_key_is_refused_before_any_snapshot(aws: AwsDriver, target: Target) -> None:
    calls = recorder_for(aws, "rds")
    with pytest.raises(UsageError, match=r"needs the target's KMS key \(keys.kind: kms\)"):
        take_point_snapshot(target, "before-v2", aws)  # the fixture's target wraps with a keyring
    assert calls.operations() == []
