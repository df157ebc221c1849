"""Moving traffic with the Route53 failover records, against moto in process: the calls a runbook makes
on a real target (record UPSERTs, the writer's health check), their idempotence and their errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from target_files import unit_target_doc

from recovery.drivers.aws import AwsDriver
from recovery.errors import RecoveryError
from recovery.failover.traffic import (
    ROUTE53_REGION,
    TRAFFIC_TTL_SECONDS,
    health_check_for,
    point_traffic,
    read_records,
    traffic_site,
)
from recovery.targets.model import Target


@pytest.fixture
def target(aws: AwsDriver, tmp_path: Path) -> Iterator[Target]:
    """A target whose zone holds the failover records as a stack deploys them: PRIMARY at the primary
    site (with its health check), SECONDARY at the standby."""
    r53 = aws.client("route53", ROUTE53_REGION)
    zone = r53.create_hosted_zone(Name="example.test", CallerReference="traffic-test")["HostedZone"]
    doc = unit_target_doc(tmp_path)
    doc["traffic"]["hosted_zone_id"] = zone["Id"].split("/")[-1]
    built = Target.model_validate(doc)
    check = r53.create_health_check(
        CallerReference="primary",
        HealthCheckConfig={
            "IPAddress": "127.0.0.11",
            "Port": 18080,
            "Type": "HTTP",
            "ResourcePath": "/health",
        },
    )["HealthCheck"]["Id"]
    r53.change_resource_record_sets(
        HostedZoneId=built.traffic.hosted_zone_id,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "CREATE",
                    "ResourceRecordSet": {
                        "Name": built.traffic.record_name,
                        "Type": "A",
                        "SetIdentifier": role.lower(),
                        "Failover": role,
                        "TTL": 60,
                        "ResourceRecords": [{"Value": address}],
                        **({"HealthCheckId": check} if role == "PRIMARY" else {}),
                    },
                }
                for role, address in (("PRIMARY", "127.0.0.11"), ("SECONDARY", "127.0.0.12"))
            ]
        },
    )
    yield built


def test_traffic_follows_the_writer_and_never_the_fenced_site(aws: AwsDriver, target: Target) -> None:
    before = read_records(target)
    assert (before.primary, before.secondary) == ("127.0.0.11", "127.0.0.12")
    assert traffic_site(target, before) == "primary"

    moved = point_traffic(target, "standby", standby_healthy=False)
    # The old writer is fenced: neither record may send clients to it, not even through Route53's own
    # failover to SECONDARY.
    assert (moved.primary, moved.secondary) == ("127.0.0.12", "127.0.0.12")
    assert traffic_site(target, moved) == "standby"
    standby_check = health_check_for(target, "standby")
    assert standby_check is not None and moved.primary_health_check == standby_check

    sets = aws.client("route53", ROUTE53_REGION).list_resource_record_sets(
        HostedZoneId=target.traffic.hosted_zone_id
    )["ResourceRecordSets"]
    ttls = {rs["SetIdentifier"]: rs["TTL"] for rs in sets if rs.get("Failover")}
    assert ttls == {"primary": TRAFFIC_TTL_SECONDS, "secondary": TRAFFIC_TTL_SECONDS}


def test_a_rerun_changes_nothing_and_a_rebuilt_standby_gets_the_secondary(
    aws: AwsDriver, target: Target
) -> None:
    point_traffic(target, "standby", standby_healthy=False)
    checks = aws.client("route53", ROUTE53_REGION).list_health_checks()["HealthChecks"]
    again = point_traffic(target, "standby", standby_healthy=False)
    assert aws.client("route53", ROUTE53_REGION).list_health_checks()["HealthChecks"] == checks
    assert (again.primary, again.secondary) == ("127.0.0.12", "127.0.0.12")

    rebuilt = point_traffic(target, "standby", standby_healthy=True)
    assert (rebuilt.primary, rebuilt.secondary) == ("127.0.0.12", "127.0.0.11")


def test_a_zone_that_does_not_exist_is_one_line(aws: AwsDriver, tmp_path: Path) -> None:
    missing = Target.model_validate(unit_target_doc(tmp_path))  # zone Z1 was never created
    with pytest.raises(RecoveryError) as caught:
        point_traffic(missing, "standby", standby_healthy=False)
    assert "\n" not in caught.value.message and "failover records" in caught.value.message
