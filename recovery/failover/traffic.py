"""Moving traffic: the target's Route53 failover records, through the one AWS client factory.

The PRIMARY record (the one clients follow while it is healthy) is pointed at the writer, the SECONDARY
record at the other site only while it is a healthy standby, otherwise at the writer too, so Route53's
own failover can never send clients to a fenced old primary. Calls are UPSERTs of what differs: a rerun
after an interruption changes nothing.

Two kinds of records, one rule:
- the lab (a target without load balancers): A records with a host's address, the PRIMARY one with a
  health check on that address, created when the writer has none;
- a real AWS target (both sites name their load balancer): alias records to the load balancers, as the
  stacks declare them, `EvaluateTargetHealth` on. Each record carries the health check that probes the
  load balancer it names, or none; health checks are the stacks' to declare, never created, changed or
  disabled here (docs/failover.md, "Traffic").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from recovery.drivers.aws import (
    AwsDriver,
    error_code,
    failover_alias_upsert,
    failover_record_upsert,
    http_health_check_config,
    translate_error,
)
from recovery.errors import PreconditionFailed
from recovery.failover.state import SiteName
from recovery.targets.model import Target

ROUTE53_REGION = "us-east-1"  # Route53 is global; its API lives in us-east-1
TRAFFIC_TTL_SECONDS = 10  # the lab's failover records' TTL: how long a client may keep the old answer
# An alias has no TTL of its own: Route53 answers with the alias target's, 60 s for a load balancer.
ALIAS_TTL_SECONDS = 60
ROLES = ("PRIMARY", "SECONDARY")
SITES: tuple[SiteName, SiteName] = ("primary", "standby")


@dataclass(frozen=True)
class Records:
    primary: str | None  # what the PRIMARY record names: a host address or a load balancer's DNS name
    secondary: str | None
    primary_health_check: str | None
    # The record sets as the zone holds them, by role: their set identifiers are kept by a move, and a
    # record that already says what the move would write is not written again.
    sets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, compare=False, repr=False)


def _route53(target: Target) -> Any:
    return AwsDriver(target.aws).client("route53", ROUTE53_REGION)


def uses_aliases(target: Target) -> bool:
    """True for a target whose sites name their load balancers (the model requires both or neither)."""
    return target.primary.load_balancer is not None


def dns_name(name: str) -> str:
    """A DNS name as Route53 compares it: lower case, no trailing dot, no `dualstack.` prefix (Route53
    adds it to load balancer aliases made in its console)."""
    return name.strip().lower().rstrip(".").removeprefix("dualstack.")


def record_ttl(target: Target) -> int:
    """How long a client may keep the answer it had before a move."""
    return ALIAS_TTL_SECONDS if uses_aliases(target) else TRAFFIC_TTL_SECONDS


def site_endpoint(target: Target, site: SiteName) -> str:
    """What a record names to send clients to `site`: its load balancer's DNS name on a real target,
    else its first host's address (the lab)."""
    balancer = target.site(site).load_balancer
    if balancer is not None:
        return dns_name(balancer.dns_name)
    return target.site(site).hosts[0].address


def _named(record: Mapping[str, Any]) -> str | None:
    alias = record.get("AliasTarget")
    if alias:
        return dns_name(str(alias["DNSName"]))
    values = record.get("ResourceRecords") or []
    return str(values[0]["Value"]) if values else None


def read_records(target: Target) -> Records:
    traffic = target.traffic
    with AwsDriver.translate("read the failover records", traffic.record_name):
        sets = _route53(target).list_resource_record_sets(
            HostedZoneId=traffic.hosted_zone_id, StartRecordName=traffic.record_name, StartRecordType="A"
        )["ResourceRecordSets"]
    found: dict[str, Mapping[str, Any]] = {}
    for rs in sets:
        if dns_name(rs["Name"]) == dns_name(traffic.record_name) and rs["Type"] == "A" and rs.get("Failover"):
            found[str(rs["Failover"])] = rs
    primary, secondary = found.get("PRIMARY", {}), found.get("SECONDARY", {})
    return Records(_named(primary), _named(secondary), primary.get("HealthCheckId"), found)


def traffic_site(target: Target, records: Records) -> SiteName | None:
    """The site the PRIMARY record points at (None when it matches neither)."""
    for name in SITES:
        if records.primary == site_endpoint(target, name):
            return name
    return None


def health_checks(target: Target) -> dict[SiteName, str]:
    """The Route53 health check probing each site: on a real target the one whose domain name is the
    site's load balancer, in the lab the one on its first host's address and service port."""
    found: dict[SiteName, str] = {}
    with AwsDriver.translate("list health checks", "route53"):
        pages = _route53(target).get_paginator("list_health_checks").paginate()
        checks = [check for page in pages for check in page["HealthChecks"]]
    for site in SITES:
        balancer = target.site(site).load_balancer
        for check in checks:
            config = check["HealthCheckConfig"]
            if balancer is not None:
                matches = dns_name(config.get("FullyQualifiedDomainName") or "") == dns_name(
                    balancer.dns_name
                )
            else:
                host = target.site(site).hosts[0]
                matches = config.get("IPAddress") == host.address and config.get("Port") == host.service_port
            if matches:
                found[site] = str(check["Id"])
                break
    return found


def health_check_for(target: Target, site: SiteName) -> str | None:
    """The Route53 health check probing `site`'s service, if any."""
    return health_checks(target).get(site)


def _create_lab_health_check(target: Target, site: SiteName) -> str:
    """A health check on `site`'s first host (idempotent by caller reference): the lab's records only."""
    host = target.site(site).hosts[0]
    with AwsDriver.translate("create a health check", host.address):
        created = _route53(target).create_health_check(
            CallerReference=f"order-recovery-{target.name}-{site}-{host.address}-{host.service_port}",
            HealthCheckConfig=http_health_check_config(host.address, host.service_port),
        )
    return str(created["HealthCheck"]["Id"])


@contextmanager
def _refused_when_missing(missing: str, what: str, remedy: str) -> Iterator[None]:
    """AWS's "not found" code `missing` becomes a refusal (exit 3, nothing changed) naming `what`; any
    other failure is the driver's one line."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        if error_code(exc) != missing:
            raise translate_error(exc, "describe", what) from exc
        raise PreconditionFailed(
            f"{what} does not exist ({missing}); {remedy}; nothing was changed", code="traffic.missing"
        ) from exc


def _check_load_balancer(target: Target, site: SiteName) -> None:
    """The site's load balancer is there, with the DNS name and zone the target names."""
    balancer = target.site(site).load_balancer
    if balancer is None:
        return
    remedy = "run `pulumi up`, then write the target again with `recovery target from-pulumi`"
    what = f"the {site} site's load balancer {balancer.arn}"
    client = AwsDriver(target.aws).client("elbv2", target.site(site).region)
    with _refused_when_missing("LoadBalancerNotFound", what, remedy):
        found = client.describe_load_balancers(LoadBalancerArns=[balancer.arn])["LoadBalancers"]
    actual = found[0] if found else {}
    if (
        dns_name(str(actual.get("DNSName", ""))) != dns_name(balancer.dns_name)
        or actual.get("CanonicalHostedZoneId") != balancer.hosted_zone_id
    ):
        raise PreconditionFailed(
            f"{what} answers as {actual.get('DNSName')} in zone {actual.get('CanonicalHostedZoneId')}, "
            f"not {balancer.dns_name} in {balancer.hosted_zone_id} as the target says; {remedy}; "
            "nothing was changed",
            code="traffic.stale_target",
        )


def prepare_traffic(target: Target, writer: SiteName) -> str | None:
    """Check what moving traffic to `writer` needs before anything is fenced, so a refusal (exit 3)
    changes nothing: the hosted zone, and on a real target the writer's load balancer as the target
    names it (the other site's may be in a lost region: not asked). Returns the health check the PRIMARY
    record will carry: the writer's load balancer's, or none (its alias's EvaluateTargetHealth alone);
    in the lab the writer's host's, created when missing so the move itself stays one change."""
    zone = f"hosted zone {target.traffic.hosted_zone_id}"
    with _refused_when_missing("NoSuchHostedZone", zone, "check traffic.hosted_zone_id in the target"):
        _route53(target).list_resource_record_sets(HostedZoneId=target.traffic.hosted_zone_id, MaxItems="1")
    if uses_aliases(target):
        _check_load_balancer(target, writer)
        return health_check_for(target, writer)
    return health_check_for(target, writer) or _create_lab_health_check(target, writer)


def _comparable(record: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    if record is None:
        return None
    alias = record.get("AliasTarget")
    return (
        record.get("SetIdentifier"),
        record.get("Failover"),
        record.get("TTL"),
        tuple(str(value["Value"]) for value in record.get("ResourceRecords") or ()),
        (alias["HostedZoneId"], dns_name(alias["DNSName"]), bool(alias["EvaluateTargetHealth"]))
        if alias
        else None,
        record.get("HealthCheckId"),
    )


def traffic_changes(
    target: Target,
    writer: SiteName,
    *,
    standby_healthy: bool,
    records: Records,
    checks: Mapping[SiteName, str],
) -> list[dict[str, Any]]:
    """The UPSERTs that point PRIMARY at `writer` and SECONDARY at the other site when it is a healthy
    standby (else at the writer as well), leaving out a record that already says so. Pure.

    On a real target every record carries the health check of the load balancer it names (`checks`), or
    none; in the lab only PRIMARY carries one (the writer's)."""
    other: SiteName = "standby" if writer == "primary" else "primary"
    changes = []
    for role, site in (("PRIMARY", writer), ("SECONDARY", other if standby_healthy else writer)):
        existing = records.sets.get(role)
        set_identifier = str(existing["SetIdentifier"]) if existing else None
        balancer = target.site(site).load_balancer
        if balancer is not None:
            change = failover_alias_upsert(
                target.traffic.record_name,
                role,
                balancer.dns_name,
                balancer.hosted_zone_id,
                checks.get(site),
                set_identifier=set_identifier,
            )
        else:
            change = failover_record_upsert(
                target.traffic.record_name,
                role,
                site_endpoint(target, site),
                TRAFFIC_TTL_SECONDS,
                checks.get(writer) if role == "PRIMARY" else None,
                set_identifier=set_identifier,
            )
        if _comparable(existing) != _comparable(change["ResourceRecordSet"]):
            changes.append(change)
    return changes


def point_traffic(
    target: Target, writer: SiteName, *, standby_healthy: bool, health_check: str | None = None
) -> Records:
    """PRIMARY -> the writer; SECONDARY -> the other site when it is a healthy standby, else the writer
    as well, in one ChangeResourceRecordSets (none when the records already say so). `health_check`: the
    lab writer's, when already known. Returns the records as read back."""
    records = read_records(target)
    if uses_aliases(target):
        checks = health_checks(target)
    else:
        checks = {
            writer: health_check
            or health_check_for(target, writer)
            or _create_lab_health_check(target, writer)
        }
    changes = traffic_changes(target, writer, standby_healthy=standby_healthy, records=records, checks=checks)
    if not changes:
        return records
    with AwsDriver.translate("change the failover records", target.traffic.record_name):
        _route53(target).change_resource_record_sets(
            HostedZoneId=target.traffic.hosted_zone_id,
            ChangeBatch={"Comment": f"order-recovery: traffic to the {writer} site", "Changes": changes},
        )
    return read_records(target)
