"""Preflight's observation of RDS sites against moto, then its pure decision over what was observed.

moto does not implement DescribePendingMaintenanceActions: that one call (checked with botocore's Stubber
in test_rds_driver.py) answers from the test here; everything else is moto's RDS and CloudWatch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rds_sites import PRIMARY_ID, STANDBY_ID, STANDBY_REGION, build_sites
from target_files import rds_target, unit_target

from recovery.drivers.aws import AwsDriver
from recovery.drivers.rds import RdsDriver
from recovery.release.preflight_checks.rds import GIB, decide_rds, observe_rds
from recovery.targets.model import Objectives


def _metric(aws: AwsDriver, region: str, instance: str, name: str, value: float, at: datetime) -> None:
    aws.client("cloudwatch", region).put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": instance}],
                "Timestamp": at,
                "Value": value,
            }
        ],
    )


def test_both_rds_sites_are_observed_and_judged(
    aws: AwsDriver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_sites(aws)
    now = datetime.now(UTC)
    _metric(aws, STANDBY_REGION, STANDBY_ID, "ReplicaLag", 42.0, now - timedelta(minutes=1))
    _metric(aws, STANDBY_REGION, STANDBY_ID, "FreeStorageSpace", 40 * GIB, now - timedelta(minutes=1))
    _metric(aws, "eu-west-1", PRIMARY_ID, "FreeStorageSpace", 2 * GIB, now - timedelta(minutes=2))
    pending = {PRIMARY_ID: ["system-update: New operating system update is available"], STANDBY_ID: []}
    monkeypatch.setattr(RdsDriver, "pending_maintenance", lambda self, arn: pending[arn.rsplit(":", 1)[-1]])
    primary, standby = observe_rds(rds_target(tmp_path), now, aws)
    assert (primary.site, primary.instance, primary.problem) == ("primary", PRIMARY_ID, None)
    assert (primary.engine_version, primary.backup_retention_days, primary.is_replica) == ("16.4", 7, False)
    assert primary.free_storage_bytes == 2 * GIB and primary.replica_lag_seconds is None
    assert standby.is_replica and standby.replica_lag_seconds == 42.0
    objectives = Objectives(realtime_backup_max_age_seconds=360, replication_lag_max_seconds=30)
    failing = {
        (f.subject.split()[0], f.name)
        for facts in (primary, standby)
        for f in decide_rds(facts, postgres_min_major=15, objectives=objectives, now=now)
        if not f.ok
    }
    # The primary: maintenance pending, 2 GiB free of 50; the standby: 42 s behind.
    assert failing == {
        ("primary", "rds_maintenance"),
        ("primary", "rds_free_storage"),
        ("standby", "rds_replica_lag"),
    }


def test_an_instance_that_is_not_there_is_a_finding_not_a_crash(aws: AwsDriver, tmp_path: Path) -> None:
    primary, standby = observe_rds(
        rds_target(tmp_path, instance_ids=("order-recovery-x", "order-recovery-y")), datetime.now(UTC), aws
    )
    assert primary.problem is not None and "order-recovery-x does not exist in eu-west-1" in primary.problem
    assert standby.problem is not None


def test_a_self_managed_target_has_no_rds_facts(tmp_path: Path) -> None:
    assert observe_rds(unit_target(tmp_path), datetime.now(UTC)) == ()
