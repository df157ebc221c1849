"""The failover record of one site, and for the primary the health check that decides when to leave it.

Each stack owns its own record: the primary's PRIMARY record (with the health check on its load balancer)
and the standby's SECONDARY record. Losing the primary region therefore never blocks an update of the
standby's record. The stacks create the records; which load balancer each one names is the runbooks' to
change after that (recovery/failover/traffic.py, docs/failover.md), so `pulumi up` ignores it.

Route53 publishes health check metrics in us-east-1 only, so the health check's alarm lives there: it
notifies the team topic when the site is in us-east-1, and otherwise a topic of its own in us-east-1 (an
alarm can only notify a topic of its own region).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from order_infra.config import SiteName
from order_infra.policies import alarm_topic_key_policy

HEALTH_METRICS_REGION = "us-east-1"

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
    account_id: pulumi.Input[str]
    site_region: str
    team_topic_arn: pulumi.Input[str]
    # A provider in us-east-1, where Route53's health check metrics are (the primary stack only).
    health_metrics_provider: aws.Provider | None = None


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
        if health_check is not None:
            self._health_alarm(name, args, health_check)
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
            # The stacks create the pair; where it points is the runbooks' to change (a switchover or a
            # failover aliases PRIMARY to the new writer's load balancer, with that one's health check or
            # none): a later `pulumi up` must not send clients back to a fenced old writer.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["aliases", "healthCheckId"]),
        )
        self.record_fqdn = record.fqdn
        self.health_check_id = health_check.id if health_check is not None else None
        self.register_outputs({"recordFqdn": self.record_fqdn})

    def _health_alarm(
        self, name: str, args: FailoverRoutingArgs, health_check: aws.route53.HealthCheck
    ) -> None:
        if args.health_metrics_provider is None:
            raise ValueError("the primary's health check alarm needs a provider in us-east-1")
        in_us_east_1 = pulumi.ResourceOptions(parent=self, provider=args.health_metrics_provider)
        topic_arn: pulumi.Input[str] = args.team_topic_arn
        if args.site_region != HEALTH_METRICS_REGION:
            key = aws.kms.Key(
                f"{name}-alarm-key",
                description="order-recovery: the health check alarm topic in us-east-1",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                policy=pulumi.Output.from_input(args.account_id).apply(
                    lambda account: json.dumps(alarm_topic_key_policy(account))
                ),
                tags=args.tags,
                opts=in_us_east_1,
            )
            topic = aws.sns.Topic(
                f"{name}-alarm-topic",
                display_name="Order recovery: front door health",
                kms_master_key_id=key.arn,
                tags={**args.tags, "audience": "team"},
                opts=in_us_east_1,
            )
            topic_arn = topic.arn
        aws.cloudwatch.MetricAlarm(
            f"{name}-health-alarm",
            alarm_description="Route53 finds the primary's load balancer unhealthy: traffic fails over",
            namespace="AWS/Route53",
            metric_name="HealthCheckStatus",
            dimensions={"HealthCheckId": health_check.id},
            statistic="Minimum",
            period=60,
            evaluation_periods=2,
            threshold=1,
            comparison_operator="LessThanThreshold",
            # Route53 reports every minute while the check exists; silence means the check is gone.
            treat_missing_data="breaching",
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
            tags=args.tags,
            opts=in_us_east_1,
        )
        self.health_alarm_topic_arn = topic_arn
