"""Two sites' RDS databases in moto (in process or the lab's server): a primary with its RDS-managed
master secret, a cross-region read replica of it, each in a VPC of its own; and a recorder of every AWS
call made."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from moto import mock_aws

from recovery.drivers.aws import AwsDriver

PRIMARY_REGION = "eu-west-1"
STANDBY_REGION = "us-west-2"
PRIMARY_ID = "order-recovery-primary"
STANDBY_ID = "order-recovery-standby"


@dataclass(frozen=True)
class SiteDb:
    region: str
    identifier: str
    arn: str
    vpc_id: str
    subnet_group: str
    security_group: str
    kms_key_arn: str


@dataclass(frozen=True)
class RdsSites:
    primary: SiteDb
    standby: SiteDb


def _network(aws: AwsDriver, region: str, name: str) -> tuple[str, str, str]:
    ec2 = aws.client("ec2", region)
    vpc = ec2.create_vpc(CidrBlock="10.10.0.0/16")["Vpc"]["VpcId"]
    zones = [f"{region}a", f"{region}b"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.10.{index}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for index, zone in enumerate(zones)
    ]
    aws.client("rds", region).create_db_subnet_group(
        DBSubnetGroupName=f"{name}-db-subnets", DBSubnetGroupDescription=name, SubnetIds=subnets
    )
    group = ec2.create_security_group(GroupName=f"{name}-db", Description="db", VpcId=vpc)["GroupId"]
    return vpc, f"{name}-db-subnets", group


def mirror_subnet_group(aws: AwsDriver, site: SiteDb, into_region: str) -> None:
    """moto looks a cross-region replica's subnet group up in its source's region, not its own: a group
    of the same name there lets the driver's real call through (AWS looks in the replica's region)."""
    ec2 = aws.client("ec2", into_region)
    vpc = ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(
            VpcId=vpc, CidrBlock=f"10.99.{index}.0/24", AvailabilityZone=f"{into_region}{zone}"
        )["Subnet"]["SubnetId"]
        for index, zone in enumerate("ab")
    ]
    aws.client("rds", into_region).create_db_subnet_group(
        DBSubnetGroupName=site.subnet_group, DBSubnetGroupDescription="moto lookup", SubnetIds=subnets
    )


def build_sites(aws: AwsDriver, regions: tuple[str, str] = (PRIMARY_REGION, STANDBY_REGION)) -> RdsSites:
    """The primary database (Multi-AZ, managed master password, 7 days of backups) and its replica."""
    made = {}
    for region, identifier, name in (
        (regions[0], PRIMARY_ID, "primary"),
        (regions[1], STANDBY_ID, "standby"),
    ):
        vpc, subnets, group = _network(aws, region, name)
        key = aws.kms(region).create_key(Description=f"{name} site key")["KeyMetadata"]["Arn"]
        made[name] = (region, identifier, vpc, subnets, group, key)
    region, identifier, vpc, subnets, group, key = made["primary"]
    primary = aws.client("rds", region).create_db_instance(
        DBInstanceIdentifier=identifier,
        Engine="postgres",
        EngineVersion="16.4",
        DBInstanceClass="db.t4g.medium",
        AllocatedStorage=50,
        DBName="orders",
        MasterUsername="postgres",
        ManageMasterUserPassword=True,
        MasterUserSecretKmsKeyId=key,
        DBSubnetGroupName=subnets,
        VpcSecurityGroupIds=[group],
        BackupRetentionPeriod=7,
        MultiAZ=True,
        StorageEncrypted=True,
        KmsKeyId=key,
        DeletionProtection=True,
    )["DBInstance"]
    s_region, s_identifier, s_vpc, s_subnets, s_group, s_key = made["standby"]
    # moto looks a cross-region replica's subnet group up in the source's region: the replica is made
    # without one (it reports none), which the tests of the standby's placement take into account.
    replica = aws.client("rds", s_region).create_db_instance_read_replica(
        DBInstanceIdentifier=s_identifier,
        SourceDBInstanceIdentifier=primary["DBInstanceArn"],
        DBInstanceClass="db.t4g.medium",
        KmsKeyId=s_key,
    )["DBInstance"]
    return RdsSites(
        SiteDb(region, identifier, primary["DBInstanceArn"], vpc, subnets, group, key),
        SiteDb(s_region, s_identifier, replica["DBInstanceArn"], s_vpc, s_subnets, s_group, s_key),
    )


@dataclass
class CallRecorder:
    """Every API call a set of boto3 clients sends: (region, operation, parameters), in order."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def attach(self, client: Any, region: str) -> None:
        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.calls.append((region, model.name, dict(params)))

        client.meta.events.register("provide-client-params.*.*", record)

    def operations(self) -> list[str]:
        return [operation for _, operation, _ in self.calls]

    def params(self, operation: str) -> list[dict[str, Any]]:
        return [params for _, name, params in self.calls if name == operation]

    def clear(self) -> None:
        self.calls.clear()


def recorder_for(aws: AwsDriver, *services: str) -> CallRecorder:
    """A recorder attached to the driver's clients of `services` in both regions."""
    recorder = CallRecorder()
    for service in services:
        for region in (PRIMARY_REGION, STANDBY_REGION):
            recorder.attach(aws.client(service, region), region)
    return recorder


@contextlib.contextmanager
def moto_in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsDriver]:
    """moto in process, for tests outside tests/aws (whose conftest has its own `aws` fixture)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield AwsDriver()
