"""The RDS failover platform against moto in process: the calls of fence, promote, open for writes and
rebuild, their parameters and order, their reruns, and a failover runbook run through the engine.

moto has no database behind RDS: every database endpoint here is a loopback port nothing listens on,
so the platform's SQL parts find the endpoint silent and say so (the SQL fence is reported not
confirmed, observe falls back to the API's view, the generation cannot be recorded). That is how the
platform behaves on a real account whose endpoint does not answer the controller; nothing here switches
it off for tests."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
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
from target_files import unit_target_doc

from recovery.drivers.aws import AwsDriver
from recovery.drivers.rds import FENCED_FROM_TAG, RdsDriver
from recovery.engine import Engine
from recovery.engine.engine import failed_run
from recovery.errors import ExternalFailure, UsageError
from recovery.failover.rds import RdsPlatform, set_aside_name, snapshot_name
from recovery.failover.traffic import ROUTE53_REGION
from recovery.runbooks.failover import failover_params, failover_runbook, platform_for
from recovery.targets.model import Target


def _silent_port() -> int:
    """A loopback port nothing listens on (bound, then released): connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def sites(aws: AwsDriver) -> RdsSites:
    return build_sites(aws)


@pytest.fixture
def target(aws: AwsDriver, sites: RdsSites, tmp_path: Path) -> Target:
    """Both sites on RDS (moto's instances), their endpoints and services silent, the target's key a
    multi-region KMS key, the traffic records in a moto zone."""
    key = aws.kms(PRIMARY_REGION).create_key(MultiRegion=True, Description="target key")["KeyMetadata"]["Arn"]
    zone = aws.client("route53", ROUTE53_REGION).create_hosted_zone(
        Name="example.test", CallerReference="rds-failover"
    )["HostedZone"]["Id"]
    doc = unit_target_doc(tmp_path, "shop")
    doc["kind"] = "aws"
    doc["keys"] = {"kind": "kms", "kms_key_id": key, "region": PRIMARY_REGION}
    doc["traffic"]["hosted_zone_id"] = zone.split("/")[-1]
    for name, region, identifier in (
        ("primary", PRIMARY_REGION, PRIMARY_ID),
        ("standby", STANDBY_REGION, STANDBY_ID),
    ):
        site = doc[name]
        site["region"] = region
        site["hosts"][0]["service_port"] = _silent_port()
        site["database"] = {
            "kind": "rds",
            "address": "127.0.0.1",
            "port": _silent_port(),
            "rds_instance_id": identifier,
            "fence_admit": ["10.255.0.0/24"],
        }
    return Target.model_validate(doc)


def _non_reads(operations: list[str]) -> list[str]:
    return [op for op in operations if not op.startswith("Describe") and op != "GetMetricStatistics"]


def test_platform_for_gives_rds_for_rds_targets_and_refuses_a_mix(target: Target) -> None:
    assert isinstance(platform_for(target), RdsPlatform)
    mixed = target.model_copy(
        update={
            "standby": target.standby.model_copy(
                update={"database": target.standby.database.model_copy(update={"kind": "self-managed"})}
            )
        }
    )
    with pytest.raises(UsageError, match="same kind of database"):
        platform_for(mixed)


def _replica_lag(aws: AwsDriver, seconds: float) -> None:
    """A ReplicaLag datapoint of the standby a minute ago, as RDS publishes it."""
    aws.client("cloudwatch", STANDBY_REGION).put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "ReplicaLag",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": STANDBY_ID}],
                "Timestamp": datetime.now(UTC) - timedelta(minutes=1),
                "Value": seconds,
            }
        ],
    )


def test_observe_without_sql_reads_the_api_and_cloudwatch(aws: AwsDriver, target: Target) -> None:
    _replica_lag(aws, 2.0)
    platform = RdsPlatform(target, aws)
    primary = platform.observe(target.primary, target.primary)
    standby = platform.observe(target.standby, target.primary)
    assert primary.reachable and primary.in_recovery is False and primary.read_only is False
    assert primary.problem is not None and "state from the RDS API" in primary.problem
    assert standby.reachable and standby.in_recovery is True and standby.read_only is True
    assert standby.lag_seconds == 2.0 and standby.lag_bytes is None


def test_the_fence_moves_groups_and_reports_the_silent_sql_fence(
    aws: AwsDriver, sites: RdsSites, target: Target
) -> None:
    platform = RdsPlatform(target, aws)
    calls = recorder_for(aws, "rds", "ec2")
    means = platform.fence(target.primary)
    assert [(m.means, m.confirmed) for m in means] == [("security-group", True), ("database", False)]
    assert sites.primary.security_group in means[0].detail
    # The SQL fence needs the service's role, read over SQL: no endpoint answers, so it is not confirmed.
    assert "no database answers" in means[1].detail
    assert _non_reads(calls.operations()) == [
        "CreateSecurityGroup",
        "RevokeSecurityGroupEgress",
        "AuthorizeSecurityGroupIngress",  # the controller's CIDR, PostgreSQL only
        "AddTagsToResource",
        "ModifyDBInstance",
    ]
    (admitted,) = calls.params("AuthorizeSecurityGroupIngress")
    assert admitted["IpPermissions"][0]["IpRanges"][0]["CidrIp"] == "10.255.0.0/24"
    (modify,) = calls.params("ModifyDBInstance")
    assert modify["DBInstanceIdentifier"] == PRIMARY_ID and modify["ApplyImmediately"] is True
    fenced_state = platform.observe(target.primary, target.primary)
    assert fenced_state.read_only is True and not fenced_state.writable
    # A rerun changes nothing.
    calls.clear()
    again = platform.fence(target.primary)
    assert [(m.means, m.confirmed) for m in again] == [("security-group", True), ("database", False)]
    assert "ModifyDBInstance" not in calls.operations() and "CreateSecurityGroup" not in calls.operations()


def test_open_for_writes_gives_the_groups_back_then_needs_sql(
    aws: AwsDriver, sites: RdsSites, target: Target
) -> None:
    platform = RdsPlatform(target, aws)
    platform.fence(target.primary)
    calls = recorder_for(aws, "rds", "ec2")
    with pytest.raises(ExternalFailure):
        platform.open_for_writes(target.primary, 2)  # the generation goes into the database: silent here
    (modify,) = calls.params("ModifyDBInstance")
    assert modify == {
        "DBInstanceIdentifier": PRIMARY_ID,
        "VpcSecurityGroupIds": [sites.primary.security_group],
        "ApplyImmediately": True,
    }
    driver = RdsDriver(aws, PRIMARY_REGION)
    assert driver.describe(PRIMARY_ID).security_groups == (sites.primary.security_group,)
    # A rerun finds the groups given back and modifies nothing before the SQL part.
    calls.clear()
    assert platform.unfence(target.primary) is False
    assert "ModifyDBInstance" not in calls.operations()


def test_promote_keeps_the_old_writers_retention_and_is_idempotent(aws: AwsDriver, target: Target) -> None:
    platform = RdsPlatform(target, aws)
    calls = recorder_for(aws, "rds")
    promotion = platform.promote(target.standby)
    assert not promotion.already
    assert (promotion.lsn, promotion.timeline) == ("unknown", 0)  # read over SQL: silent here
    assert _non_reads(calls.operations()) == ["PromoteReadReplica"]
    (promote,) = calls.params("PromoteReadReplica")
    assert promote == {"DBInstanceIdentifier": STANDBY_ID, "BackupRetentionPeriod": 7}
    # moto keeps the replica link after a promotion (real RDS clears it), so the rerun is shown on an
    # instance that is no replica: it is described, never promoted.
    calls.clear()
    assert platform.promote(target.primary).already
    assert "PromoteReadReplica" not in calls.operations()


def test_rebuild_snapshots_sets_aside_and_replicates_under_the_old_name(
    aws: AwsDriver, sites: RdsSites, target: Target
) -> None:
    platform = RdsPlatform(target, aws)
    platform.fence(target.primary)
    platform.promote(target.standby)
    mirror_subnet_group(aws, sites.primary, STANDBY_REGION)
    calls = recorder_for(aws, "rds", "ec2")
    rebuilt = platform.rebuild_as_standby(target.primary, target.standby, "failback-20261207T010000")
    aside = set_aside_name(PRIMARY_ID, "failback-20261207T010000")
    assert rebuilt.method == "replica" and rebuilt.set_aside == aside
    assert _non_reads(calls.operations()) == [
        "CreateDBSnapshot",
        "ModifyDBInstance",
        "CreateDBInstanceReadReplica",
    ]
    (snapshot,) = calls.params("CreateDBSnapshot")
    assert snapshot["DBInstanceIdentifier"] == PRIMARY_ID
    assert snapshot["DBSnapshotIdentifier"] == snapshot_name(PRIMARY_ID, "failback-20261207T010000")
    (rename,) = calls.params("ModifyDBInstance")
    assert rename["NewDBInstanceIdentifier"] == aside
    (create,) = calls.params("CreateDBInstanceReadReplica")
    assert create["DBInstanceIdentifier"] == PRIMARY_ID
    assert create["SourceDBInstanceIdentifier"] == sites.standby.arn
    assert create["SourceRegion"] == STANDBY_REGION
    assert create["KmsKeyId"].split(":")[3] == PRIMARY_REGION  # the target key's copy in this region
    assert create["KmsKeyId"].endswith(target.keys.kms_key_id.split(":")[-1])  # type: ignore[union-attr]
    # The replica is placed in the groups the old writer had before its fence, not the fence group.
    assert create["VpcSecurityGroupIds"] == [sites.primary.security_group]
    driver = RdsDriver(aws, PRIMARY_REGION)
    old = driver.describe(aside)
    assert old.tag(FENCED_FROM_TAG) == sites.primary.security_group and old.security_groups != (
        sites.primary.security_group,
    )  # the old writer stays fenced
    assert driver.describe(PRIMARY_ID).is_replica
    # A rerun of the same run, and of a later one, change nothing.
    calls.clear()
    again = platform.rebuild_as_standby(target.primary, target.standby, "failback-20261207T010000")
    later = platform.rebuild_as_standby(target.primary, target.standby, "failback-20261208T000000")
    assert again.method == later.method == "none"
    assert _non_reads(calls.operations()) == []


def test_a_failover_runs_through_the_engine_as_far_as_moto_has_no_database(
    aws: AwsDriver, sites: RdsSites, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """observe (the API's view), fence (groups confirmed, SQL not), promote run against moto; opening the
    new writer needs its database (the generation is recorded there), so the run stops there."""
    _replica_lag(aws, 1.0)
    # The runbook's platform makes its own driver from the target; it is given the recorded one.
    monkeypatch.setattr("recovery.failover.rds.AwsDriver", lambda endpoint: aws)
    calls = recorder_for(aws, "rds", "ec2")
    runbook = failover_runbook(target, failover_params(None, 60))
    with pytest.raises(ExternalFailure) as failed:
        Engine(target).run(runbook)
    result = failed_run(failed.value)
    assert result is not None and result.failed_step == "open-for-writes"
    assert "cannot connect to PostgreSQL" in str(failed.value)
    fence = next(step for step in result.steps if step.name == "fence").output
    assert fence is not None
    assert [(m["means"], m["confirmed"]) for m in fence["means"]] == [
        ("security-group", True),
        ("database", False),  # decided by the platform: no endpoint answers, so no role to lock out
        ("service", True),  # no host answers /health: none can write
    ]
    operations = _non_reads(calls.operations())
    assert operations == [
        "CreateSecurityGroup",
        "RevokeSecurityGroupEgress",
        "AuthorizeSecurityGroupIngress",
        "AddTagsToResource",
        "ModifyDBInstance",  # the fence of the lost writer
        "PromoteReadReplica",
    ]
    (modify,) = calls.params("ModifyDBInstance")
    assert modify["DBInstanceIdentifier"] == PRIMARY_ID
    (promote,) = calls.params("PromoteReadReplica")
    assert promote == {"DBInstanceIdentifier": STANDBY_ID, "BackupRetentionPeriod": 7}
    assert RdsDriver(aws, PRIMARY_REGION).describe(PRIMARY_ID).security_groups != (
        sites.primary.security_group,
    )
