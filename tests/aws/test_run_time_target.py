"""What a run resolves when it starts on an AWS target, against moto: hosts found by their tags, the RDS
master password read into a passfile that lives for the run only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from rds_sites import PRIMARY_ID, PRIMARY_REGION, STANDBY_REGION, build_sites
from target_files import rds_target

from recovery.drivers.aws import AwsDriver
from recovery.drivers.rds import RdsDriver
from recovery.drivers.secrets import read_credentials
from recovery.errors import PreconditionFailed
from recovery.runbooks.run_time import run_time_target

HOST_TAGS = {"project": "order-recovery", "role": "order-service"}


def launch(aws: AwsDriver, region: str, tags: dict[str, str], *, count: int = 1) -> list[str]:
    ec2 = aws.client("ec2", region)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    made = ec2.run_instances(
        ImageId=image,
        MinCount=count,
        MaxCount=count,
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ],
    )["Instances"]
    return [instance["InstanceId"] for instance in made]


def test_the_hosts_are_the_running_instances_carrying_the_site_tags(aws: AwsDriver, tmp_path: Path) -> None:
    primary = launch(aws, PRIMARY_REGION, {**HOST_TAGS, "site": "primary"}, count=2)
    stopped = launch(aws, PRIMARY_REGION, {**HOST_TAGS, "site": "primary"})
    aws.client("ec2", PRIMARY_REGION).stop_instances(InstanceIds=stopped)
    launch(aws, PRIMARY_REGION, {"project": "order-recovery", "site": "primary", "role": "bastion"})
    standby = launch(aws, STANDBY_REGION, {**HOST_TAGS, "site": "standby"})
    target = rds_target(tmp_path)
    with run_time_target(target, aws) as live:
        assert sorted(h.name for h in live.primary.hosts) == sorted(f"primary-{i}" for i in primary)
        assert [h.name for h in live.standby.hosts] == [f"standby-{standby[0]}"]
        described = aws.client("ec2", PRIMARY_REGION).describe_instances(InstanceIds=primary)
        addresses = {i["PrivateIpAddress"] for r in described["Reservations"] for i in r["Instances"]}
        assert {h.address for h in live.primary.hosts} == addresses
        assert {(h.ssh_user, h.service_port) for h in live.hosts()} == {("ec2-user", 8080)}
    assert target.primary.hosts == ()  # the target itself is unchanged


def test_a_site_with_no_running_host_refuses_before_anything(aws: AwsDriver, tmp_path: Path) -> None:
    launch(aws, PRIMARY_REGION, {**HOST_TAGS, "site": "primary"})
    with (
        pytest.raises(
            PreconditionFailed, match="no running instance in us-west-2 carries the standby site's tags"
        ),
        run_time_target(rds_target(tmp_path), aws),
    ):
        pytest.fail("the block must not run")


def test_the_rds_master_password_lives_in_a_passfile_for_the_run_only(aws: AwsDriver, tmp_path: Path) -> None:
    build_sites(aws)
    launch(aws, PRIMARY_REGION, {**HOST_TAGS, "site": "primary"})
    launch(aws, STANDBY_REGION, {**HOST_TAGS, "site": "standby"})
    secret = RdsDriver(aws, PRIMARY_REGION).describe(PRIMARY_ID).master_secret_arn
    assert secret is not None
    expected = read_credentials(aws, PRIMARY_REGION, secret)
    target = rds_target(tmp_path, master_secret_arn=secret)
    with run_time_target(target, aws) as live:
        passfile = live.primary.database.passfile
        assert passfile is not None and stat.S_IMODE(passfile.stat().st_mode) == 0o600
        assert passfile.read_text() == (
            f"127.0.0.1:15432:*:{expected.username}:{expected.password.get_secret_value()}\n"
        )
        # The replica's credentials are its source's: the same secret, read in its region.
        assert live.standby.database.passfile is not None
        assert live.primary.database.user == expected.username
    assert not passfile.exists() and not live.standby.database.passfile.exists()
    assert target.primary.database.passfile is None
