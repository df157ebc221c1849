"""Moving traffic on a real AWS target, against moto in process: the failover records are aliases to the
sites' load balancers as the stacks declare them (PRIMARY with the health check on the primary's load
balancer, SECONDARY without), and a move changes which load balancer each alias names."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from target_files import unit_target_doc

from recovery.drivers.aws import AwsDriver
from recovery.errors import ExitCode, PreconditionFailed
from recovery.failover import traffic
from recovery.failover.traffic import (
    ROUTE53_REGION,
    point_traffic,
    prepare_traffic,
    read_records,
    traffic_site,
)
from recovery.targets.model import Target

RECORD = "orders.example.test"


def _load_balancer(aws: AwsDriver, region: str, name: str) -> dict[str, str]:
    ec2 = aws.client("ec2", region)
    vpc = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.1.{n}.0/24", AvailabilityZone=f"{region}{zone}")[
            "Subnet"
        ]["SubnetId"]
        for n, zone in ((1, "a"), (2, "b"))
    ]
    made = aws.client("elbv2", region).create_load_balancer(Name=name, Subnets=subnets)["LoadBalancers"][0]
    return {
        "arn": made["LoadBalancerArn"],
        "dns_name": made["DNSName"],
        "hosted_zone_id": made["CanonicalHostedZoneId"],
    }


def _alias(
    name: str, role: str, identifier: str, balancer: dict[str, str], check: str | None
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "Name": name,
        "Type": "A",
        "SetIdentifier": identifier,
        "Failover": role,
        "AliasTarget": {
            "HostedZoneId": balancer["hosted_zone_id"],
            "DNSName": balancer["dns_name"],
            "EvaluateTargetHealth": True,
        },
    }
    if check:
        record["HealthCheckId"] = check
    return record


@pytest.fixture
def balancers(aws: AwsDriver) -> dict[str, dict[str, str]]:
    return {
        "primary": _load_balancer(aws, "eu-west-1", "order-recovery-primary"),
        "standby": _load_balancer(aws, "eu-central-1", "order-recovery-standby"),
    }


@pytest.fixture
def stack_records(aws: AwsDriver, balancers: dict[str, dict[str, str]]) -> tuple[str, str]:
    """The zone as the stacks leave it: (zone id, the primary load balancer's health check)."""
    r53 = aws.client("route53", ROUTE53_REGION)
    zone = r53.create_hosted_zone(Name="example.test", CallerReference="aliases")["HostedZone"]["Id"]
    check = r53.create_health_check(
        CallerReference="primary-lb",
        HealthCheckConfig={
            "Type": "HTTPS",
            "FullyQualifiedDomainName": balancers["primary"]["dns_name"],
            "Port": 443,
            "ResourcePath": "/health",
            "RequestInterval": 10,
            "FailureThreshold": 3,
        },
    )["HealthCheck"]["Id"]
    # The stacks name each record after its site (set identifiers `primary` and `standby`).
    r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": _alias(RECORD, "PRIMARY", "primary", balancers["primary"], check),
                },
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": _alias(RECORD, "SECONDARY", "standby", balancers["standby"], None),
                },
            ]
        },
    )
    return zone.split("/")[-1], check


@pytest.fixture
def target(tmp_path: Path, balancers: dict[str, dict[str, str]], stack_records: tuple[str, str]) -> Target:
    doc = unit_target_doc(tmp_path)
    doc["kind"] = "aws"
    doc["traffic"]["hosted_zone_id"] = stack_records[0]
    doc["traffic"]["record_name"] = RECORD
    for site in ("primary", "standby"):
        doc[site]["load_balancer"] = balancers[site]
    return Target.model_validate(doc)


@pytest.fixture
def batches(aws: AwsDriver, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every ChangeBatch the traffic module sends, as sent."""
    sent: list[dict[str, Any]] = []
    client = aws.client("route53", ROUTE53_REGION)

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(copy.deepcopy(params["ChangeBatch"]))

    client.meta.events.register("provide-client-params.route53.ChangeResourceRecordSets", record)
    monkeypatch.setattr(traffic, "_route53", lambda _target: client)
    yield sent
    client.meta.events.unregister("provide-client-params.route53.ChangeResourceRecordSets", record)


def _zone(aws: AwsDriver, target: Target) -> list[dict[str, Any]]:
    sets = aws.client("route53", ROUTE53_REGION).list_resource_record_sets(
        HostedZoneId=target.traffic.hosted_zone_id
    )["ResourceRecordSets"]
    return sorted((rs for rs in sets if rs.get("Failover")), key=lambda rs: str(rs["Failover"]))


def _health_checks(aws: AwsDriver) -> list[dict[str, Any]]:
    return aws.client("route53", ROUTE53_REGION).list_health_checks()["HealthChecks"]


def test_a_failover_aliases_both_records_to_the_new_writers_load_balancer(
    aws: AwsDriver,
    target: Target,
    balancers: dict[str, dict[str, str]],
    batches: list[dict[str, Any]],
) -> None:
    assert traffic_site(target, read_records(target)) == "primary"
    checks_before = _health_checks(aws)

    assert prepare_traffic(target, "standby") is None  # the standby's load balancer has no health check
    moved = point_traffic(target, "standby", standby_healthy=False)

    standby = balancers["standby"]
    # One change, of PRIMARY only: SECONDARY already names the standby's load balancer. PRIMARY keeps the
    # stack's set identifier, evaluates the load balancer's target health, and drops the health check of
    # the primary's load balancer, which is no longer what it names.
    assert batches == [
        {
            "Comment": "order-recovery: traffic to the standby site",
            "Changes": [
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": _alias(RECORD, "PRIMARY", "primary", standby, None),
                },
            ],
        }
    ]
    assert traffic_site(target, moved) == "standby"
    assert moved.primary == moved.secondary == standby["dns_name"].lower()
    zone = _zone(aws, target)
    assert [(rs["SetIdentifier"], rs["Failover"]) for rs in zone] == [
        ("primary", "PRIMARY"),
        ("standby", "SECONDARY"),
    ]
    for rs in zone:
        assert rs["AliasTarget"]["DNSName"].rstrip(".").lower() == standby["dns_name"].lower()
        assert rs["AliasTarget"]["EvaluateTargetHealth"] is True
        assert "HealthCheckId" not in rs and "TTL" not in rs
    # Health checks are the stacks': none created, none changed.
    assert _health_checks(aws) == checks_before


def test_a_rerun_sends_nothing_and_the_way_back_restores_what_the_stacks_declared(
    aws: AwsDriver,
    target: Target,
    stack_records: tuple[str, str],
    batches: list[dict[str, Any]],
) -> None:
    declared = _zone(aws, target)
    point_traffic(target, "standby", standby_healthy=False)
    moved = _zone(aws, target)

    again = point_traffic(target, "standby", standby_healthy=False)
    assert len(batches) == 1  # the rerun found the records as it would write them: no change sent
    assert _zone(aws, target) == moved and traffic_site(target, again) == "standby"

    # Failback then a switchover back: PRIMARY names the primary's load balancer with its health check
    # again, SECONDARY the rebuilt standby's: the records are exactly as the stacks declared them.
    point_traffic(target, "standby", standby_healthy=True)
    back = point_traffic(target, "primary", standby_healthy=True)
    assert back.primary_health_check == stack_records[1]
    assert _zone(aws, target) == declared
    point_traffic(target, "primary", standby_healthy=True)
    assert len(batches) == 3


def test_a_missing_hosted_zone_refuses_before_anything_changes(aws: AwsDriver, target: Target) -> None:
    gone = target.model_copy(
        update={"traffic": target.traffic.model_copy(update={"hosted_zone_id": "Z0NOSUCHZONE"})}
    )
    with pytest.raises(PreconditionFailed) as caught:
        prepare_traffic(gone, "standby")
    assert caught.value.exit_code == ExitCode.REFUSED
    assert caught.value.message.count("\n") == 0
    assert "hosted zone Z0NOSUCHZONE does not exist (NoSuchHostedZone)" in caught.value.message


def test_a_missing_load_balancer_refuses_before_anything_changes(
    aws: AwsDriver, target: Target, balancers: dict[str, dict[str, str]]
) -> None:
    aws.client("elbv2", "eu-central-1").delete_load_balancer(LoadBalancerArn=balancers["standby"]["arn"])
    before = _zone(aws, target)
    with pytest.raises(PreconditionFailed) as caught:
        prepare_traffic(target, "standby")
    assert caught.value.exit_code == ExitCode.REFUSED
    assert caught.value.message.count("\n") == 0
    assert (
        f"the standby site's load balancer {balancers['standby']['arn']} does not exist"
        in caught.value.message
    )
    assert "recovery target from-pulumi" in caught.value.message
    assert _zone(aws, target) == before


def test_a_target_naming_another_load_balancer_than_aws_has_is_refused(
    aws: AwsDriver, target: Target, balancers: dict[str, dict[str, str]]
) -> None:
    named = target.standby.load_balancer
    assert named is not None
    standby = target.standby.model_copy(
        update={"load_balancer": named.model_copy(update={"hosted_zone_id": "Z0OTHER"})}
    )
    stale = target.model_copy(update={"standby": standby})
    with pytest.raises(PreconditionFailed) as caught:
        prepare_traffic(stale, "standby")
    assert caught.value.exit_code == ExitCode.REFUSED and "Z0OTHER" in caught.value.message
    assert caught.value.message.count("\n") == 0


def test_a_target_naming_one_load_balancer_only_is_bad_input(
    tmp_path: Path, balancers: dict[str, dict[str, str]]
) -> None:
    doc = unit_target_doc(tmp_path)
    doc["primary"]["load_balancer"] = balancers["primary"]
    with pytest.raises(ValueError, match="load_balancer of both sites or of neither"):
        Target.model_validate(doc)
