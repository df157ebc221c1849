"""The cloud-level fence of a self-managed database on AWS, against moto in process: the security group
rule admitting the order service revoked (its copy kept in a tag first), recorded as confirmed, idempotent,
and given back by failback; a group that is not there is a reported, unconfirmed fence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from target_files import unit_target_doc

from recovery.drivers.aws import AwsDriver
from recovery.failover.infrastructure import fence_infrastructure
from recovery.failover.network_fence import FENCE_TAG, admitting_rules, restore_service_ingress
from recovery.targets.model import Target

REGION = "eu-west-1"  # the unit target's primary site
ADMIN = {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "IpRanges": [{"CidrIp": "10.99.0.0/24"}]}


@pytest.fixture
def groups(aws: AwsDriver) -> dict[str, str]:
    """The database's group admitting the service's group (and the controller's CIDR) to PostgreSQL."""
    ec2 = aws.client("ec2", REGION)
    vpc = ec2.create_vpc(CidrBlock="10.2.0.0/16")["Vpc"]["VpcId"]
    made = {
        name: ec2.create_security_group(GroupName=f"orders-{name}", Description=name, VpcId=vpc)["GroupId"]
        for name in ("database", "service")
    }
    ec2.authorize_security_group_ingress(
        GroupId=made["database"],
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 5432,
                "ToPort": 5432,
                "UserIdGroupPairs": [{"GroupId": made["service"], "Description": "order service"}],
            },
            ADMIN,
        ],
    )
    return made


@pytest.fixture
def target(tmp_path: Path, groups: dict[str, str]) -> Target:
    doc = unit_target_doc(tmp_path)
    doc["kind"] = "aws"
    doc["primary"]["database"]["port"] = 5432
    doc["primary"]["network_fence"] = {
        "database_group_id": groups["database"],
        "service_group_id": groups["service"],
    }
    return Target.model_validate(doc)


def _group(aws: AwsDriver, group_id: str) -> dict[str, Any]:
    return dict(aws.client("ec2", REGION).describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0])


def _service_rules(aws: AwsDriver, groups: dict[str, str]) -> list[dict[str, Any]]:
    return admitting_rules(_group(aws, groups["database"])["IpPermissions"], groups["service"], 5432)


def _tag(group: dict[str, Any]) -> str | None:
    return next((t["Value"] for t in group.get("Tags") or () if t["Key"] == FENCE_TAG), None)


def test_the_fence_revokes_the_services_rule_only_and_keeps_a_copy(
    aws: AwsDriver, target: Target, groups: dict[str, str]
) -> None:
    before = _service_rules(aws, groups)
    assert before == [
        {
            "IpProtocol": "tcp",
            "FromPort": 5432,
            "ToPort": 5432,
            "UserIdGroupPairs": [
                {"GroupId": groups["service"], "UserId": "123456789012", "Description": "order service"}
            ],
        }
    ]

    means = fence_infrastructure(target, target.primary, "orders_service")

    assert (means.means, means.confirmed) == ("security-group", True)
    assert groups["database"] in means.detail and FENCE_TAG in means.detail
    group = _group(aws, groups["database"])
    assert _service_rules(aws, groups) == []
    # The controller's own rule stays: a failback must still read what the old writer acknowledged.
    assert [p.get("IpRanges") for p in group["IpPermissions"]] == [[{"CidrIp": "10.99.0.0/24"}]]
    tag = _tag(group)
    assert tag is not None and json.loads(tag) == before

    # A rerun (a resumed failover) finds it done and changes nothing.
    again = fence_infrastructure(target, target.primary, "orders_service")
    assert again.confirmed and _group(aws, groups["database"]) == group


def test_failback_gives_the_rule_back_as_it_was_and_drops_the_copy(
    aws: AwsDriver, target: Target, groups: dict[str, str]
) -> None:
    before = _service_rules(aws, groups)
    fence_infrastructure(target, target.primary, "orders_service")

    given_back = restore_service_ingress(target, target.primary)

    assert given_back is not None and "admits" in given_back
    assert _service_rules(aws, groups) == before  # description included
    assert _tag(_group(aws, groups["database"])) is None
    # Nothing left to give back: a rerun does nothing, and neither does a site never fenced so.
    assert restore_service_ingress(target, target.primary) is None
    assert restore_service_ingress(target, target.standby) is None
    assert _service_rules(aws, groups) == before


def test_a_rule_given_back_by_an_interrupted_failback_is_not_an_error(
    aws: AwsDriver, target: Target, groups: dict[str, str]
) -> None:
    before = _service_rules(aws, groups)
    fence_infrastructure(target, target.primary, "orders_service")
    # Killed after the rule went back, before the tag was dropped.
    ec2 = aws.client("ec2", REGION)
    ec2.authorize_security_group_ingress(GroupId=groups["database"], IpPermissions=before)
    assert restore_service_ingress(target, target.primary) is not None
    assert _service_rules(aws, groups) == before and _tag(_group(aws, groups["database"])) is None


def test_a_group_that_is_not_there_is_an_unconfirmed_fence_in_one_line(
    aws: AwsDriver, target: Target, groups: dict[str, str]
) -> None:
    fence = target.primary.network_fence
    assert fence is not None
    gone = fence.model_copy(update={"database_group_id": "sg-0123456789abcdef0"})
    site = target.primary.model_copy(update={"network_fence": gone})
    means = fence_infrastructure(target, site, "orders_service")
    assert (means.means, means.confirmed) == ("security-group", False)
    assert "\n" not in means.detail and "sg-0123456789abcdef0" in means.detail
    assert _service_rules(aws, groups) != []  # the real group was not touched


def test_without_a_network_fence_a_real_target_reports_what_a_person_must_do(target: Target) -> None:
    means = fence_infrastructure(target, target.standby, "orders_service")
    assert (means.means, means.confirmed) == ("cloud", False)
    assert "network_fence" in means.detail
