"""Moving traffic: the target's Route53 failover records, through the one AWS client factory.

The PRIMARY record (the one clients follow while its health check passes) is pointed at the writer's
address with the writer's health check; the SECONDARY record at the other site only while it is a
healthy standby, otherwise at the writer too, so Route53's own failover can never send clients to a
fenced old primary. Calls are UPSERTs: a rerun after an interruption changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recovery.drivers.aws import AwsDriver, failover_record_upsert
from recovery.failover.state import SiteName
from recovery.targets.model import Target

ROUTE53_REGION = "us-east-1"  # Route53 is global; its API lives in us-east-1
TRAFFIC_TTL_SECONDS = 10  # the failover records' TTL: how long a client may keep the old answer


@dataclass(frozen=True)
class Records:
    primary: str | None
    secondary: str | None
    primary_health_check: str | None


def _route53(target: Target) -> Any:
    return AwsDriver(target.aws).client("route53", ROUTE53_REGION)


def site_address(target: Target, site: SiteName) -> str:
    """The address clients reach a site's service at (its first host: the lab's A record value)."""
    return target.site(site).hosts[0].address


def read_records(target: Target) -> Records:
    traffic = target.traffic
    with AwsDriver.translate("read the failover records", traffic.record_name):
        sets = _route53(target).list_resource_record_sets(
            HostedZoneId=traffic.hosted_zone_id, StartRecordName=traffic.record_name, StartRecordType="A"
        )["ResourceRecordSets"]
    found: dict[str, dict[str, Any]] = {}
    for rs in sets:
        if rs["Name"].rstrip(".") == traffic.record_name.rstrip(".") and rs.get("Failover"):
            found[str(rs["Failover"])] = rs

    def value(role: str) -> str | None:
        values = found.get(role, {}).get("ResourceRecords") or []
        return str(values[0]["Value"]) if values else None

    return Records(value("PRIMARY"), value("SECONDARY"), found.get("PRIMARY", {}).get("HealthCheckId"))


def traffic_site(target: Target, records: Records) -> SiteName | None:
    """The site the PRIMARY record points at (None when it matches neither)."""
    for name in ("primary", "standby"):
        if records.primary == site_address(target, name):  # type: ignore[arg-type]
            return name  # type: ignore[return-value]
    return None


def health_check_for(target: Target, site: SiteName) -> str | None:
    """The Route53 health check probing `site`'s service (matched by address and port), if any."""
    host = target.site(site).hosts[0]
    with AwsDriver.translate("list health checks", "route53"):
        checks = _route53(target).list_health_checks()["HealthChecks"]
    for check in checks:
        config = check["HealthCheckConfig"]
        if config.get("IPAddress") == host.address and config.get("Port") == host.service_port:
            return str(check["Id"])
    return None


def ensure_health_check(target: Target, site: SiteName) -> str:
    """The health check of `site`'s service, created when missing (idempotent by caller reference)."""
    found = health_check_for(target, site)
    if found is not None:
        return found
    host = target.site(site).hosts[0]
    with AwsDriver.translate("create a health check", host.address):
        created = _route53(target).create_health_check(
            CallerReference=f"order-recovery-{target.name}-{site}-{host.address}-{host.service_port}",
            HealthCheckConfig={
                "IPAddress": host.address,
                "Port": host.service_port,
                "Type": "HTTP",
                "ResourcePath": "/health",
                "RequestInterval": 10,
                "FailureThreshold": 1,
            },
        )
    return str(created["HealthCheck"]["Id"])


def point_traffic(
    target: Target, writer: SiteName, *, standby_healthy: bool, health_check: str | None = None
) -> Records:
    """PRIMARY -> the writer (with its health check, `health_check` when already known); SECONDARY ->
    the other site when it is a healthy standby, else the writer as well. Returns the records as read
    back."""
    other: SiteName = "standby" if writer == "primary" else "primary"
    check = health_check or ensure_health_check(target, writer)
    secondary = site_address(target, other if standby_healthy else writer)
    with AwsDriver.translate("change the failover records", target.traffic.record_name):
        _route53(target).change_resource_record_sets(
            HostedZoneId=target.traffic.hosted_zone_id,
            ChangeBatch={
                "Comment": f"order-recovery: traffic to the {writer} site",
                "Changes": [
                    failover_record_upsert(
                        target.traffic.record_name,
                        "PRIMARY",
                        site_address(target, writer),
                        TRAFFIC_TTL_SECONDS,
                        check,
                    ),
                    failover_record_upsert(
                        target.traffic.record_name, "SECONDARY", secondary, TRAFFIC_TTL_SECONDS
                    ),
                ],
            },
        )
    return read_records(target)
