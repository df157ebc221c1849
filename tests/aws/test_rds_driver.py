"""The RDS driver against moto in process: every call, its parameters, the waiters and their order.

moto has no DescribePendingMaintenanceActions and no StartDBInstanceAutomatedBackupsReplication: those
two calls are checked with botocore's Stubber on the driver's own client (parameters validated against
the service model), and said so in docs/deploy.md.
"""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import Stubber
from rds_sites import (
    PRIMARY_ID,
    PRIMARY_REGION,
    STANDBY_ID,
    STANDBY_REGION,
    RdsSites,
    build_sites,
    mirror_subnet_group,
    recorder_for,
)

from recovery.drivers.aws import AwsDriver
from recovery.drivers.rds import (
    FENCE_GROUP_NAME,
    Placement,
    RdsDriver,
    WaitPolicy,
    scratch_identifier,
)
from recovery.drivers.secrets import read_credentials, run_time_passfile
from recovery.engine.redact import redact_text
from recovery.errors import ConfigError, ExternalFailure, PreconditionFailed, UsageError

FAST = WaitPolicy(delay_seconds=1, max_attempts=3)


@pytest.fixture
def sites(aws: AwsDriver) -> RdsSites:
    return build_sites(aws)


def _driver(aws: AwsDriver, region: str = PRIMARY_REGION) -> RdsDriver:
    return RdsDriver(aws, region, FAST)


def test_describe_reads_what_the_toolkit_decides_on(aws: AwsDriver, sites: RdsSites) -> None:
    primary = _driver(aws).describe(PRIMARY_ID)
    assert primary.arn == sites.primary.arn
    assert primary.status == "available"
    assert primary.engine_version == "16.4"
    assert primary.backup_retention_days == 7
    assert primary.security_groups == (sites.primary.security_group,)
    assert primary.subnet_group == sites.primary.subnet_group
    assert primary.vpc_id == sites.primary.vpc_id
    assert primary.master_secret_arn and ":secret:" in primary.master_secret_arn
    assert primary.latest_restorable_time is not None and primary.latest_restorable_time.tzinfo is not None
    assert not primary.is_replica
    replica = _driver(aws, STANDBY_REGION).describe(STANDBY_ID)
    assert replica.is_replica


def test_an_unknown_instance_is_a_refusal_naming_the_field(aws: AwsDriver, sites: RdsSites) -> None:
    with pytest.raises(
        PreconditionFailed, match=r"order-recovery-gone does not exist in eu-west-1.*rds_instance_id"
    ):
        _driver(aws).describe("order-recovery-gone")


def test_point_in_time_recovery_goes_into_a_private_scratch_instance(aws: AwsDriver, sites: RdsSites) -> None:
    calls = recorder_for(aws, "rds")
    driver = _driver(aws)
    at = datetime.now(UTC) - timedelta(minutes=5)
    scratch_id = scratch_identifier("20261206231500_ab12")
    scratch = driver.restore_to_time(
        PRIMARY_ID,
        scratch_id,
        at=at,
        placement=driver.describe(PRIMARY_ID).placement,
        secret_key_id=sites.primary.kms_key_arn,
    )
    assert calls.operations() == [
        "DescribeDBInstances",  # the source's placement
        "RestoreDBInstanceToPointInTime",
        "DescribeDBInstances",  # the waiter: db_instance_available
        "DescribeDBInstances",  # what was made
    ]
    (sent,) = calls.params("RestoreDBInstanceToPointInTime")
    assert sent["SourceDBInstanceIdentifier"] == PRIMARY_ID
    assert sent["TargetDBInstanceIdentifier"] == scratch_id == "order-recovery-scratch-20261206231500-ab12"
    assert sent["RestoreTime"] == at
    assert "UseLatestRestorableTime" not in sent
    assert sent["DBSubnetGroupName"] == sites.primary.subnet_group
    assert sent["VpcSecurityGroupIds"] == [sites.primary.security_group]
    assert (sent["MultiAZ"], sent["PubliclyAccessible"], sent["DeletionProtection"]) == (False, False, False)
    assert sent["ManageMasterUserPassword"] is True
    assert sent["MasterUserSecretKmsKeyId"] == sites.primary.kms_key_arn
    assert {"Key": "purpose", "Value": "restore-scratch"} in sent["Tags"]
    waited = calls.params("DescribeDBInstances")[1]
    assert waited == {"DBInstanceIdentifier": scratch_id}
    assert scratch.identifier == scratch_id and scratch.status == "available"
    assert scratch.address and scratch.port
    assert (
        scratch.master_secret_arn
        and scratch.master_secret_arn != driver.describe(PRIMARY_ID).master_secret_arn
    )


def test_without_a_time_the_latest_restorable_time_is_asked_for(aws: AwsDriver, sites: RdsSites) -> None:
    calls = recorder_for(aws, "rds")
    driver = _driver(aws)
    driver.restore_to_time(
        PRIMARY_ID, scratch_identifier("latest"), at=None, placement=driver.describe(PRIMARY_ID).placement
    )
    (sent,) = calls.params("RestoreDBInstanceToPointInTime")
    assert sent["UseLatestRestorableTime"] is True and "RestoreTime" not in sent
    assert "MasterUserSecretKmsKeyId" not in sent


def test_only_scratch_instances_are_created_or_deleted(aws: AwsDriver, sites: RdsSites) -> None:
    calls = recorder_for(aws, "rds")
    driver = _driver(aws)
    placement = driver.describe(PRIMARY_ID).placement
    calls.clear()
    with pytest.raises(UsageError, match="not a scratch instance name"):
        driver.delete_scratch(PRIMARY_ID)
    with pytest.raises(UsageError, match="not a scratch instance name"):
        driver.restore_to_time(PRIMARY_ID, "order-recovery-primary-copy", at=None, placement=placement)
    assert calls.operations() == []  # refused before any call
    assert driver.find(PRIMARY_ID) is not None


def test_a_scratch_instance_is_deleted_without_a_final_snapshot_and_waited_for(
    aws: AwsDriver, sites: RdsSites
) -> None:
    driver = _driver(aws)
    scratch_id = scratch_identifier("deleted")
    driver.restore_to_time(PRIMARY_ID, scratch_id, at=None, placement=driver.describe(PRIMARY_ID).placement)
    calls = recorder_for(aws, "rds")
    assert driver.delete_scratch(scratch_id) is True
    # moto copies the source's deletion protection into a point-in-time restore (AWS applies the
    # DeletionProtection=False asked for): the driver lifts it from its own scratch instance first.
    assert [op for op in calls.operations() if op != "ModifyDBInstance"] == [
        "DescribeDBInstances",
        "DeleteDBInstance",
        "DescribeDBInstances",  # the waiter: db_instance_deleted
    ]
    for lifted in calls.params("ModifyDBInstance"):
        assert lifted == {
            "DBInstanceIdentifier": scratch_id,
            "DeletionProtection": False,
            "ApplyImmediately": True,
        }
    (sent,) = calls.params("DeleteDBInstance")
    assert sent == {
        "DBInstanceIdentifier": scratch_id,
        "SkipFinalSnapshot": True,
        "DeleteAutomatedBackups": True,
    }
    assert driver.find(scratch_id) is None
    assert driver.delete_scratch(scratch_id) is False  # already gone: idempotent


def test_a_restore_point_snapshot_restores_into_a_scratch_instance(aws: AwsDriver, sites: RdsSites) -> None:
    driver = _driver(aws)
    calls = recorder_for(aws, "rds")
    snapshot = driver.create_snapshot(
        PRIMARY_ID, "order-recovery-point-before-v2", {"restore-point": "before-v2"}
    )
    assert calls.operations() == ["CreateDBSnapshot", "DescribeDBSnapshots", "DescribeDBSnapshots"]
    (sent,) = calls.params("CreateDBSnapshot")
    assert sent["DBInstanceIdentifier"] == PRIMARY_ID
    assert {"Key": "restore-point", "Value": "before-v2"} in sent["Tags"]
    assert snapshot.status == "available" and snapshot.instance == PRIMARY_ID
    calls.clear()
    scratch = driver.restore_snapshot(
        snapshot.identifier, scratch_identifier("point"), placement=driver.describe(PRIMARY_ID).placement
    )
    assert calls.operations()[1:] == [
        "RestoreDBInstanceFromDBSnapshot",
        "DescribeDBInstances",
        "DescribeDBInstances",
    ]
    (restored,) = calls.params("RestoreDBInstanceFromDBSnapshot")
    assert restored["DBSnapshotIdentifier"] == snapshot.identifier
    assert (restored["PubliclyAccessible"], restored["DeletionProtection"]) == (False, False)
    assert scratch.status == "available"


def test_a_snapshot_is_copied_into_the_other_region_with_its_key(aws: AwsDriver, sites: RdsSites) -> None:
    made = _driver(aws).create_snapshot(PRIMARY_ID, "order-recovery-daily-1")
    standby = _driver(aws, STANDBY_REGION)
    calls = recorder_for(aws, "rds")
    copy = standby.copy_snapshot(
        made.arn, PRIMARY_REGION, "order-recovery-daily-1-copy", kms_key_id=sites.standby.kms_key_arn
    )
    assert [(region, op) for region, op, _ in calls.calls] == [
        (STANDBY_REGION, "CopyDBSnapshot"),
        (STANDBY_REGION, "DescribeDBSnapshots"),
        (STANDBY_REGION, "DescribeDBSnapshots"),
    ]
    (sent,) = calls.params("CopyDBSnapshot")
    assert sent["SourceDBSnapshotIdentifier"] == made.arn
    assert sent["SourceRegion"] == PRIMARY_REGION
    assert sent["KmsKeyId"] == sites.standby.kms_key_arn
    assert copy.identifier == "order-recovery-daily-1-copy"
    assert [s.identifier for s in standby.snapshots(PRIMARY_ID)] == ["order-recovery-daily-1-copy"]


def test_promotion_of_the_replica_keeps_backups(aws: AwsDriver, sites: RdsSites) -> None:
    standby = _driver(aws, STANDBY_REGION)
    calls = recorder_for(aws, "rds")
    promoted = standby.promote(STANDBY_ID, backup_retention_days=7)
    assert calls.operations() == [
        "DescribeDBInstances",  # is it still a replica?
        "PromoteReadReplica",
        "DescribeDBInstances",  # the waiter: db_instance_available
        "DescribeDBInstances",  # what it is now
    ]
    (sent,) = calls.params("PromoteReadReplica")
    assert sent == {"DBInstanceIdentifier": STANDBY_ID, "BackupRetentionPeriod": 7}
    assert promoted.identifier == STANDBY_ID and promoted.status == "available"
    # moto keeps the replica link after a promotion (real RDS clears it), so the state after it is not
    # asserted here; an instance that is no longer a replica is never promoted again:
    calls.clear()
    assert not _driver(aws).promote(PRIMARY_ID, backup_retention_days=7).is_replica
    assert calls.operations() == ["DescribeDBInstances"]


def test_the_fence_moves_the_instance_into_a_group_that_admits_nobody(
    aws: AwsDriver, sites: RdsSites
) -> None:
    driver = _driver(aws)
    calls = recorder_for(aws, "rds", "ec2")
    fenced = driver.fence(PRIMARY_ID)
    assert calls.operations() == [
        "DescribeDBInstances",
        "DescribeSecurityGroups",
        "CreateSecurityGroup",
        "RevokeSecurityGroupEgress",
        "AddTagsToResource",  # the groups it had, kept on the instance for a rerun
        "ModifyDBInstance",
        "DescribeDBInstances",  # waiter
        "DescribeDBInstances",  # confirmation
    ]
    (modify,) = calls.params("ModifyDBInstance")
    assert modify == {
        "DBInstanceIdentifier": PRIMARY_ID,
        "VpcSecurityGroupIds": [fenced.fence_group],
        "ApplyImmediately": True,
    }
    assert fenced.previous_groups == (sites.primary.security_group,)
    group = aws.client("ec2", PRIMARY_REGION).describe_security_groups(GroupIds=[fenced.fence_group])[
        "SecurityGroups"
    ][0]
    assert group["GroupName"] == FENCE_GROUP_NAME and group["VpcId"] == sites.primary.vpc_id
    assert group["IpPermissions"] == [] and group["IpPermissionsEgress"] == []
    assert driver.describe(PRIMARY_ID).security_groups == (fenced.fence_group,)
    # The controller may be admitted through the fence (PostgreSQL only), the service's hosts never.
    calls.clear()
    assert driver.fence_group(sites.primary.vpc_id, ["10.255.0.0/24"]) == fenced.fence_group
    assert driver.fence_group(sites.primary.vpc_id, ["10.255.0.0/24"]) == fenced.fence_group  # idempotent
    (admitted,) = aws.client("ec2", PRIMARY_REGION).describe_security_groups(GroupIds=[fenced.fence_group])[
        "SecurityGroups"
    ][0]["IpPermissions"]
    assert (admitted["FromPort"], admitted["ToPort"]) == (5432, 5432)
    assert [r["CidrIp"] for r in admitted["IpRanges"]] == ["10.255.0.0/24"]
    assert calls.operations().count("AuthorizeSecurityGroupIngress") == 2
    calls.clear()
    # A rerun (the first run's result lost with its process): nothing is modified, and the groups to give
    # back come from the tag written before the fence.
    again = driver.fence(PRIMARY_ID)
    assert again == fenced
    assert "ModifyDBInstance" not in calls.operations() and "CreateSecurityGroup" not in calls.operations()
    assert driver.unfence(again).security_groups == (sites.primary.security_group,)


def test_the_old_primary_is_kept_and_a_replica_of_the_new_one_takes_its_name(
    aws: AwsDriver, sites: RdsSites
) -> None:
    standby, primary = _driver(aws, STANDBY_REGION), _driver(aws)
    new_primary = standby.promote(STANDBY_ID, backup_retention_days=7)
    mirror_subnet_group(aws, sites.primary, STANDBY_REGION)
    calls = recorder_for(aws, "rds")
    kept = primary.create_snapshot(PRIMARY_ID, "order-recovery-primary-before-rebuild")
    aside = primary.set_aside(PRIMARY_ID, "order-recovery-primary-old-20261206")
    placement = aside.placement
    replica = primary.create_replica(
        PRIMARY_ID,
        source_arn=new_primary.arn,
        source_region=STANDBY_REGION,
        kms_key_id=sites.primary.kms_key_arn,
        placement=placement,
        instance_class="db.t4g.medium",
    )
    assert [op for op in calls.operations() if not op.startswith("Describe")] == [
        "CreateDBSnapshot",
        "ModifyDBInstance",
        "CreateDBInstanceReadReplica",
    ]
    (rename,) = calls.params("ModifyDBInstance")
    assert rename == {
        "DBInstanceIdentifier": PRIMARY_ID,
        "NewDBInstanceIdentifier": "order-recovery-primary-old-20261206",
        "ApplyImmediately": True,
    }
    (create,) = calls.params("CreateDBInstanceReadReplica")
    assert create["SourceDBInstanceIdentifier"] == new_primary.arn
    assert create["SourceRegion"] == STANDBY_REGION
    assert create["KmsKeyId"] == sites.primary.kms_key_arn
    assert create["DeletionProtection"] is True and create["PubliclyAccessible"] is False
    assert kept.status == "available"
    assert primary.find("order-recovery-primary-old-20261206") is not None
    assert replica.identifier == PRIMARY_ID and replica.is_replica
    # Running the same steps again changes nothing.
    calls.clear()
    primary.set_aside(PRIMARY_ID, "order-recovery-primary-old-20261206")
    with pytest.raises(PreconditionFailed, match="set it aside first"):
        primary.create_replica(
            "order-recovery-primary-old-20261206",
            source_arn=new_primary.arn,
            source_region=STANDBY_REGION,
            kms_key_id=sites.primary.kms_key_arn,
            placement=placement,
        )
    assert all(op.startswith("Describe") for op in calls.operations())


def test_the_latest_cloudwatch_datapoint_is_read(aws: AwsDriver, sites: RdsSites) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    cloudwatch = aws.client("cloudwatch", STANDBY_REGION)
    for minutes_ago, lag in ((4, 2.0), (2, 9.0), (30, 99.0)):
        cloudwatch.put_metric_data(
            Namespace="AWS/RDS",
            MetricData=[
                {
                    "MetricName": "ReplicaLag",
                    "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": STANDBY_ID}],
                    "Timestamp": now - timedelta(minutes=minutes_ago),
                    "Value": lag,
                    "Unit": "Seconds",
                }
            ],
        )
    calls = recorder_for(aws, "cloudwatch")
    standby = _driver(aws, STANDBY_REGION)
    assert standby.latest_metric(STANDBY_ID, "ReplicaLag", now=now) == 9.0
    (sent,) = calls.params("GetMetricStatistics")
    assert sent["Namespace"] == "AWS/RDS" and sent["Statistics"] == ["Maximum"]
    assert sent["Dimensions"] == [{"Name": "DBInstanceIdentifier", "Value": STANDBY_ID}]
    assert standby.latest_metric(STANDBY_ID, "FreeStorageSpace", now=now) is None


def test_pending_maintenance_lines(aws: AwsDriver, sites: RdsSites) -> None:
    driver = _driver(aws)
    with Stubber(driver.rds) as stub:
        stub.add_response(
            "describe_pending_maintenance_actions",
            {
                "PendingMaintenanceActions": [
                    {
                        "ResourceIdentifier": sites.primary.arn,
                        "PendingMaintenanceActionDetails": [
                            {
                                "Action": "system-update",
                                "Description": "New operating system update is available",
                                "AutoAppliedAfterDate": datetime(2026, 12, 9, 4, 30, tzinfo=UTC),
                            }
                        ],
                    }
                ]
            },
            {"ResourceIdentifier": sites.primary.arn},
        )
        lines = driver.pending_maintenance(sites.primary.arn)
    assert lines == [
        "system-update: New operating system update is available (applied from 2026-12-09T04:30Z)"
    ]


def test_automated_backup_replication_is_started_in_the_standby_region(
    aws: AwsDriver, sites: RdsSites
) -> None:
    standby = _driver(aws, STANDBY_REGION)
    arn = f"arn:aws:rds:{STANDBY_REGION}:123456789012:auto-backup:ab-1"
    with Stubber(standby.rds) as stub:
        stub.add_response(
            "start_db_instance_automated_backups_replication",
            {"DBInstanceAutomatedBackup": {"DBInstanceAutomatedBackupsArn": arn}},
            {
                "SourceDBInstanceArn": sites.primary.arn,
                "KmsKeyId": sites.standby.kms_key_arn,
                "BackupRetentionPeriod": 7,
            },
        )
        assert (
            standby.start_backup_replication(
                sites.primary.arn, kms_key_id=sites.standby.kms_key_arn, retention_days=7
            )
            == arn
        )


def test_a_restore_that_rds_cannot_complete_is_one_line(aws: AwsDriver, sites: RdsSites) -> None:
    driver = _driver(aws)
    scratch_id = scratch_identifier("broken")
    with Stubber(driver.rds) as stub:
        stub.add_response(
            "restore_db_instance_to_point_in_time", {"DBInstance": {"DBInstanceIdentifier": scratch_id}}
        )
        stub.add_response(
            "describe_db_instances",
            {
                "DBInstances": [
                    {"DBInstanceIdentifier": scratch_id, "DBInstanceStatus": "incompatible-restore"}
                ]
            },
            {"DBInstanceIdentifier": scratch_id},
        )
        with pytest.raises(
            ExternalFailure, match=f"{scratch_id} to be available did not happen .*terminal failure"
        ) as caught:
            placement = Placement(sites.primary.subnet_group, (sites.primary.security_group,))
            driver.restore_to_time(PRIMARY_ID, scratch_id, at=None, placement=placement)
    assert "\n" not in caught.value.message


def test_an_aws_refusal_names_the_action_and_the_instance(aws: AwsDriver, sites: RdsSites) -> None:
    with pytest.raises(
        ExternalFailure,
        match="AWS refused to promote the read replica on RDS instance order-recovery-primary",
    ):
        driver = _driver(aws)
        with Stubber(driver.rds) as stub:
            stub.add_response(
                "describe_db_instances",
                {
                    "DBInstances": [
                        {"DBInstanceIdentifier": PRIMARY_ID, "ReadReplicaSourceDBInstanceIdentifier": "x"}
                    ]
                },
            )
            stub.add_client_error("promote_read_replica", "InvalidDBInstanceState", "not a replica now")
            driver.promote(PRIMARY_ID, backup_retention_days=7)


# -- the master password from Secrets Manager -------------------------------------------------------------


def test_the_master_password_is_read_at_run_time_and_never_shown(aws: AwsDriver, sites: RdsSites) -> None:
    secret_arn = _driver(aws).describe(PRIMARY_ID).master_secret_arn
    assert secret_arn is not None
    credentials = read_credentials(aws, PRIMARY_REGION, secret_arn)
    stored = json.loads(
        aws.client("secretsmanager", PRIMARY_REGION).get_secret_value(SecretId=secret_arn)["SecretString"]
    )
    password = credentials.password.get_secret_value()
    assert (credentials.username, password) == (stored["username"], stored["password"])
    assert len(password) >= 8
    assert password not in repr(credentials) and password not in str(credentials)
    # Whatever text carries it afterwards (an error, a journal note) loses it in the redactor.
    assert redact_text(f"FATAL: login failed with {password} for postgres") == (
        "FATAL: login failed with <redacted> for postgres"
    )


def test_the_passfile_lives_for_the_block_only_and_only_for_us(aws: AwsDriver, sites: RdsSites) -> None:
    secret_arn = _driver(aws).describe(PRIMARY_ID).master_secret_arn
    assert secret_arn is not None
    credentials = read_credentials(aws, PRIMARY_REGION, secret_arn)
    with run_time_passfile(credentials, [("db.example", 5432), ("scratch.example", 5433)]) as path:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        lines = path.read_text().splitlines()
        user = credentials.username
        assert lines == [
            f"db.example:5432:*:{user}:{credentials.password.get_secret_value()}",
            f"scratch.example:5433:*:{user}:{credentials.password.get_secret_value()}",
        ]
    assert not path.exists() and not path.parent.exists()
    with pytest.raises(RuntimeError), run_time_passfile(credentials, [("db", 5432)]) as failing:
        raise RuntimeError("the run failed")
    assert not failing.parent.exists()


def test_a_secret_of_the_wrong_shape_is_refused_without_quoting_it(aws: AwsDriver) -> None:
    client = aws.client("secretsmanager", PRIMARY_REGION)
    arn = client.create_secret(Name="not-rds", SecretString="hunter2-plain-text")["ARN"]
    with pytest.raises(ConfigError, match="not a JSON object with username and password") as caught:
        read_credentials(aws, PRIMARY_REGION, arn)
    assert "hunter2" not in caught.value.message
    with pytest.raises(ExternalFailure, match="read the database secret"):
        read_credentials(aws, PRIMARY_REGION, arn.replace("not-rds", "missing"))
