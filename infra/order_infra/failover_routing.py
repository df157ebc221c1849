"""The failover record of one site, and for the primary the health check that decides when to leave it.

Each stack owns its own record: the primary's PRIMARY record (with the health check on its load balancer)
and the standby's SECONDARY record. Losing the primary region therefore never blocks an update of the
standby's record.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from order_infra.config import SiteName

FAILOVER_TYPES: dict[SiteName, str] = {"primary": "PRIMARY", "standby": "SECONDARY"}


@dataclass(frozen=True)
class FailoverRoutingArgs:
    site: SiteName
    hosted_zone_id: str
    record_name: str
    load_balancer_dns_name: pulumi.Input[str]
    load_balancer_zone_id: pulumi.Input[str]
    health_check_path: str
    tags: dict[str, str]


class FailoverRouting(pulumi.ComponentResource):
    record_fqdn: pulumi.Output[str]
    health_check_id: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: FailoverRoutingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("order-recovery:infra:FailoverRouting", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        health_check: aws.route53.HealthCheck | None = None
        if args.site == "primary":
            health_check = aws.route53.HealthCheck(
                f"{name}-health",
                type="HTTPS",
                fqdn=args.load_balancer_dns_name,
                port=443,
                resource_path=args.health_check_path,
                request_interval=10,
                failure_threshold=3,
                measure_latency=True,
                tags={**args.tags, "Name": f"{name}-primary-lb"},
                opts=child,
            )
        record = aws.route53.Record(
            f"{name}-record",
            zone_id=args.hosted_zone_id,
            name=args.record_name,
            type="A",
            set_identifier=args.site,
            failover_routing_policies=[
                aws.route53.RecordFailoverRoutingPolicyArgs(type=FAILOVER_TYPES[args.site])
            ],
            aliases=[
                aws.route53.RecordAliasArgs(
                    name=args.load_balancer_dns_name,
                    zone_id=args.load_balancer_zone_id,
                    evaluate_target_health=True,
                )
            ],
            health_check_id=health_check.id if health_check is not None else None,
            opts=child,
        )
        self.record_fqdn = record.fqdn
        self.health_check_id = health_check.id if health_check is not None else None
        self.register_outputs({"recordFqdn": self.record_fqdn})
