"""One site of the order system: network, order service tier, database, intake queue, topics, alarms, IAM.

The primary site runs a Multi-AZ PostgreSQL; the standby site runs a cross-region read replica of it and
the same service tier, ready to take traffic when the failover record switches. Once a failover or a
switchover promoted the standby's database, the standby stack says so (`database.promoted`) and declares it
as a standalone primary with its own backups and managed secret (docs/deploy.md).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from order_infra.config import StackConfig
from order_infra.host_bootstrap import HostBootstrap, host_user_data
from order_infra.network import Network, NetworkArgs
from order_infra.policies import (
    assume_role_by_principals,
    assume_role_by_service,
    instance_role_policy,
    other_backup_bucket_pattern,
    pruning_role_policy,
    runbook_role_policy,
)
from order_infra.tags import with_name
from recovery.watch import metrics_contract as contract

POSTGRES_PORT = 5432
HTTPS_PORT = 443
HTTP_PORT = 80
SSH_PORT = 22
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# Under the site bucket: what hosts read at boot, and the only place they may write (their log files).
RELEASES_PREFIX = "releases/"
LOGS_PREFIX = "logs/"
MIB = 1024 * 1024


@dataclass(frozen=True)
class OrderStackArgs:
    config: StackConfig
    account_id: pulumi.Input[str]
    tags: dict[str, str]
    key_arn: pulumi.Input[str]
    backup_bucket_name: pulumi.Input[str]
    backup_bucket_arn: pulumi.Input[str]
    lock_table_name: pulumi.Input[str]
    autoscaling_role_arn: pulumi.Input[str]
    # Declared by the primary stack in an account that lacks it; the auto scaling group waits for it.
    autoscaling_role: pulumi.Resource | None = None
    # The standby gives the primary database's ARN and gets a cross-region read replica of it (until it is
    # promoted), and the primary's master secret, which its runbooks read while it is a replica.
    replica_source_db_arn: pulumi.Input[str] | None = None
    primary_db_secret_arn: pulumi.Input[str] | None = None


def _contract_metric(metric: contract.Metric, dimensions: dict[str, str]) -> dict[str, Any]:
    """An alarm's metric settings taken from the contract the watch publishes by (all its dimensions)."""
    if set(dimensions) != set(metric.dimensions):
        raise ValueError(f"{metric.name} is published with {metric.dimensions}, not {tuple(dimensions)}")
    return {
        "namespace": contract.NAMESPACE,
        "metric_name": metric.name,
        "dimensions": dimensions,
        "unit": metric.unit,
    }


class OrderStack(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    load_balancer_arn: pulumi.Output[str]
    load_balancer_dns_name: pulumi.Output[str]
    load_balancer_zone_id: pulumi.Output[str]
    auto_scaling_group_name: pulumi.Output[str]
    db_instance_identifier: pulumi.Output[str]
    db_instance_arn: pulumi.Output[str]
    db_address: pulumi.Output[str]
    db_port: pulumi.Output[int]
    intake_queue_url: pulumi.Output[str]
    intake_queue_arn: pulumi.Output[str]
    dead_letter_queue_url: pulumi.Output[str]
    team_topic_arn: pulumi.Output[str]
    customer_topic_arn: pulumi.Output[str]
    instance_role_arn: pulumi.Output[str]
    runbook_role_arn: pulumi.Output[str]
    pruning_role_arn: pulumi.Output[str]
    db_resource_id: pulumi.Output[str]
    db_master_secret_arn: pulumi.Output[str] | None
    service_db_secret_arn: pulumi.Output[str]

    def __init__(self, name: str, args: OrderStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("order-recovery:infra:OrderStack", name, None, opts)
        self._name = name
        self._args = args
        cfg = args.config
        self._child = pulumi.ResourceOptions(parent=self)

        network = Network(f"{name}-net", NetworkArgs(network=cfg.network, tags=args.tags), opts=self._child)
        self.vpc_id = network.vpc_id
        lb_sg, app_sg, db_sg = self._security_groups(network.vpc_id)

        self._messaging()
        self._service_db_secret()
        self._database(network, db_sg)
        self._instance_role()
        self._service_tier(network, lb_sg, app_sg)
        self._alarms()
        self._runbook_role()
        self._pruning_role()
        self.register_outputs(self.outputs())

    def outputs(self) -> dict[str, Any]:
        """Every output of the component, registered with the engine and read by the program."""
        found: dict[str, Any] = {
            "vpcId": self.vpc_id,
            "loadBalancerArn": self.load_balancer_arn,
            "loadBalancerDnsName": self.load_balancer_dns_name,
            "loadBalancerZoneId": self.load_balancer_zone_id,
            "autoScalingGroupName": self.auto_scaling_group_name,
            "dbInstanceIdentifier": self.db_instance_identifier,
            "dbInstanceArn": self.db_instance_arn,
            "dbAddress": self.db_address,
            "dbPort": self.db_port,
            "dbResourceId": self.db_resource_id,
            "intakeQueueUrl": self.intake_queue_url,
            "intakeQueueArn": self.intake_queue_arn,
            "deadLetterQueueUrl": self.dead_letter_queue_url,
            "teamTopicArn": self.team_topic_arn,
            "customerTopicArn": self.customer_topic_arn,
            "instanceRoleArn": self.instance_role_arn,
            "runbookRoleArn": self.runbook_role_arn,
            "pruningRoleArn": self.pruning_role_arn,
            "serviceDbSecretArn": self.service_db_secret_arn,
        }
        if self.db_master_secret_arn is not None:
            found["dbMasterSecretArn"] = self.db_master_secret_arn
        return found

    # -- network access: each tier admits only the tier in front of it ------------------------------------
    def _security_groups(
        self, vpc_id: pulumi.Output[str]
    ) -> tuple[aws.ec2.SecurityGroup, aws.ec2.SecurityGroup, aws.ec2.SecurityGroup]:
        name, cfg, tags = self._name, self._args.config, self._args.tags
        groups = {}
        for tier, description in (
            ("lb", "Order service load balancer: HTTPS from clients"),
            ("app", "Order service hosts: traffic from the load balancer, SSH from the controller"),
            ("db", "Order database: PostgreSQL from the order hosts and the controller"),
        ):
            # Declared without inline rules; the AWS provider then removes the default allow-all egress.
            groups[tier] = aws.ec2.SecurityGroup(
                f"{name}-{tier}-sg",
                vpc_id=vpc_id,
                description=description,
                tags=with_name(tags, f"{name}-{tier}", tier=tier),
                opts=self._child,
            )
        lb, app, db = groups["lb"], groups["app"], groups["db"]
        port = cfg.app.service_port

        def ingress(
            rule: str,
            group: aws.ec2.SecurityGroup,
            port_: int,
            description: str,
            cidr: str | None = None,
            source: aws.ec2.SecurityGroup | None = None,
        ) -> None:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-{rule}",
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=port_,
                to_port=port_,
                cidr_ipv4=cidr,
                referenced_security_group_id=source.id if source is not None else None,
                description=description,
                tags=tags,
                opts=pulumi.ResourceOptions(parent=group),
            )

        def egress(
            rule: str,
            group: aws.ec2.SecurityGroup,
            port_: int,
            description: str,
            cidr: str | None = None,
            destination: aws.ec2.SecurityGroup | None = None,
        ) -> None:
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-{rule}",
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=port_,
                to_port=port_,
                cidr_ipv4=cidr,
                referenced_security_group_id=destination.id if destination is not None else None,
                description=description,
                tags=tags,
                opts=pulumi.ResourceOptions(parent=group),
            )

        for index, cidr in enumerate(cfg.network.client_cidrs):
            ingress(f"lb-https-in-{index}", lb, HTTPS_PORT, "HTTPS from clients", cidr=cidr)
            ingress(
                f"lb-http-in-{index}", lb, HTTP_PORT, "HTTP from clients (redirected to HTTPS)", cidr=cidr
            )
        egress("lb-to-app", lb, port, "to the order service hosts", destination=app)
        ingress("app-from-lb", app, port, "order service from the load balancer", source=lb)
        for index, cidr in enumerate(cfg.network.admin_cidrs):
            ingress(f"app-ssh-in-{index}", app, SSH_PORT, "SSH from the recovery controller", cidr=cidr)
            ingress(
                f"db-admin-in-{index}",
                db,
                POSTGRES_PORT,
                "PostgreSQL from the recovery controller",
                cidr=cidr,
            )
        egress("app-https-out", app, HTTPS_PORT, "AWS APIs and package mirrors over HTTPS", cidr="0.0.0.0/0")
        egress("app-to-db", app, POSTGRES_PORT, "to the order database", destination=db)
        ingress("db-from-app", db, POSTGRES_PORT, "PostgreSQL from the order service hosts", source=app)
        return lb, app, db

    # -- intake queue and topics ----------------------------------------------------------------------------
    def _messaging(self) -> None:
        name, tags, key_arn = self._name, self._args.tags, self._args.key_arn
        dead_letters = aws.sqs.Queue(
            f"{name}-intake-dlq",
            kms_master_key_id=key_arn,
            kms_data_key_reuse_period_seconds=300,
            message_retention_seconds=14 * 24 * 3600,
            tags=with_name(tags, f"{name}-intake-dlq"),
            opts=self._child,
        )
        intake = aws.sqs.Queue(
            f"{name}-intake",
            kms_master_key_id=key_arn,
            kms_data_key_reuse_period_seconds=300,
            message_retention_seconds=4 * 24 * 3600,
            visibility_timeout_seconds=60,
            receive_wait_time_seconds=20,
            redrive_policy=dead_letters.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
            ),
            tags=with_name(tags, f"{name}-intake"),
            opts=self._child,
        )
        team = aws.sns.Topic(
            f"{name}-team",
            display_name="Order recovery: team",
            kms_master_key_id=key_arn,
            tags=with_name(tags, f"{name}-team", audience="team"),
            opts=self._child,
        )
        customers = aws.sns.Topic(
            f"{name}-customers",
            display_name="Order updates",
            kms_master_key_id=key_arn,
            tags=with_name(tags, f"{name}-customers", audience="customers"),
            opts=self._child,
        )
        self._intake_queue = intake
        self.intake_queue_url = intake.url
        self.intake_queue_arn = intake.arn
        self.dead_letter_queue_url = dead_letters.url
        self._dead_letter_queue_arn = dead_letters.arn
        self._team_topic = team
        self.team_topic_arn = team.arn
        self.customer_topic_arn = customers.arn

    # -- the service's database password: hosts read it at boot into their passfile -------------------------
    def _service_db_secret(self) -> None:
        """A secret per site that holds the service role's password; its value is put by a person, never by
        this program (it would land in the state): docs/deploy.md has the command."""
        name, args = self._name, self._args
        secret = aws.secretsmanager.Secret(
            f"{name}-service-db",
            name_prefix=f"order-recovery/{args.config.site}/service-db-",
            description=f"Password of the order service's database role ({args.config.site})",
            kms_key_id=args.key_arn,
            recovery_window_in_days=30,
            tags=args.tags,
            opts=self._child,
        )
        self.service_db_secret_arn = secret.arn

    # -- hosts: what they may touch ------------------------------------------------------------------------
    def _instance_role(self) -> None:
        name, args = self._name, self._args
        role = aws.iam.Role(
            f"{name}-instance-role",
            description=f"Order service hosts ({args.config.site})",
            assume_role_policy=json.dumps(assume_role_by_service("ec2.amazonaws.com")),
            tags=args.tags,
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{name}-instance-policy",
            role=role.id,
            policy=pulumi.Output.all(
                args.backup_bucket_arn,
                args.key_arn,
                self.intake_queue_arn,
                self.team_topic_arn,
                self.customer_topic_arn,
                self.service_db_secret_arn,
            ).apply(
                lambda values: json.dumps(
                    instance_role_policy(
                        bucket_arn=values[0],
                        logs_prefix=f"{LOGS_PREFIX}{args.config.site}/",
                        releases_prefix=RELEASES_PREFIX,
                        key_arn=values[1],
                        region=args.config.region,
                        queue_arn=values[2],
                        topic_arns=[values[3], values[4]],
                        service_secret_arn=values[5],
                    )
                )
            ),
            opts=pulumi.ResourceOptions(parent=role),
        )
        self._instance_profile = aws.iam.InstanceProfile(
            f"{name}-instance-profile",
            role=role.name,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=role),
        )
        self.instance_role_arn = role.arn

    def _user_data(self) -> pulumi.Output[str]:
        cfg = self._args.config
        return pulumi.Output.all(
            self._args.backup_bucket_name,
            self.db_address,
            self.db_port,
            self.service_db_secret_arn,
            self.intake_queue_url,
        ).apply(
            lambda v: base64.b64encode(
                host_user_data(
                    HostBootstrap(
                        site=cfg.site,
                        region=cfg.region,
                        bucket_name=v[0],
                        releases_prefix=RELEASES_PREFIX,
                        default_release=cfg.app.release,
                        service_port=cfg.app.service_port,
                        db_address=v[1],
                        db_port=int(v[2]),
                        db_name=cfg.database.name,
                        db_user="orders",
                        service_secret_arn=v[3],
                        intake_queue_url=v[4],
                    )
                ).encode()
            ).decode()
        )

    # -- the order service: launch template, auto scaling group, load balancer ------------------------------
    def _service_tier(
        self, network: Network, lb_sg: aws.ec2.SecurityGroup, app_sg: aws.ec2.SecurityGroup
    ) -> None:
        name, args = self._name, self._args
        cfg, tags = args.config, args.tags
        app = cfg.app
        template = aws.ec2.LaunchTemplate(
            f"{name}-app-lt",
            description=f"Order service host ({cfg.site})",
            image_id=app.image_id,
            instance_type=app.instance_type,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=self._instance_profile.arn),
            vpc_security_group_ids=[app_sg.id],
            # The host installs the release and starts the service at boot (host_bootstrap.py).
            user_data=self._user_data(),
            # IMDSv2 only, one hop: a compromised container cannot lift the role's credentials.
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/xvda",
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=app.root_volume_gb,
                        volume_type="gp3",
                        encrypted="true",
                        kms_key_id=args.key_arn,
                        delete_on_termination="true",
                    ),
                )
            ],
            monitoring=aws.ec2.LaunchTemplateMonitoringArgs(enabled=True),
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type="volume", tags=tags),
            ],
            update_default_version=True,
            tags=tags,
            opts=self._child,
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-app-tg",
            port=app.service_port,
            protocol="HTTP",
            target_type="instance",
            vpc_id=network.vpc_id,
            deregistration_delay=30,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                enabled=True,
                path=app.health_check_path,
                protocol="HTTP",
                matcher="200",
                interval=15,
                timeout=5,
                healthy_threshold=2,
                unhealthy_threshold=3,
            ),
            tags=tags,
            opts=self._child,
        )
        balancer = aws.lb.LoadBalancer(
            f"{name}-alb",
            load_balancer_type="application",
            internal=False,
            security_groups=[lb_sg.id],
            subnets=network.public_subnet_ids,
            drop_invalid_header_fields=True,
            enable_deletion_protection=True,
            tags=tags,
            opts=self._child,
        )
        certificate_arn = self._certificate()
        aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=balancer.arn,
            port=HTTPS_PORT,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=certificate_arn,
            default_actions=[
                aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=balancer),
        )
        aws.lb.Listener(
            f"{name}-http-redirect",
            load_balancer_arn=balancer.arn,
            port=HTTP_PORT,
            protocol="HTTP",
            default_actions=[
                aws.lb.ListenerDefaultActionArgs(
                    type="redirect",
                    redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                        protocol="HTTPS", port=str(HTTPS_PORT), status_code="HTTP_301"
                    ),
                )
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=balancer),
        )
        group = aws.autoscaling.Group(
            f"{name}-app-asg",
            vpc_zone_identifiers=network.private_subnet_ids,
            min_size=app.min_size,
            max_size=app.max_size,
            desired_capacity=app.desired_capacity,
            # A pinned version, not $Latest: a template change is a diff of the group, which the instance
            # refresh below rolls out host by host.
            launch_template=aws.autoscaling.GroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)
            ),
            instance_refresh=aws.autoscaling.GroupInstanceRefreshArgs(
                strategy="Rolling",
                preferences=aws.autoscaling.GroupInstanceRefreshPreferencesArgs(
                    min_healthy_percentage=50,
                    instance_warmup="300",
                    auto_rollback=True,
                ),
            ),
            service_linked_role_arn=args.autoscaling_role_arn,
            target_group_arns=[target_group.arn],
            # Replace hosts the load balancer finds unhealthy, not only those EC2 finds dead.
            health_check_type="ELB",
            health_check_grace_period=600,  # a boot installs packages and the release
            enabled_metrics=[
                aws.autoscaling.Metric.GROUP_IN_SERVICE_INSTANCES,
                aws.autoscaling.Metric.GROUP_DESIRED_CAPACITY,
            ],
            tags=[
                aws.autoscaling.GroupTagArgs(key=key, value=value, propagate_at_launch=True)
                for key, value in with_name(tags, f"{name}-app", role="order-service").items()
            ],
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[args.autoscaling_role] if args.autoscaling_role is not None else []
            ),
        )
        self._balancer = balancer
        self._target_group = target_group
        self._group = group
        self.load_balancer_arn = balancer.arn
        self.load_balancer_dns_name = balancer.dns_name
        self.load_balancer_zone_id = balancer.zone_id
        self.auto_scaling_group_name = group.name

    def _certificate(self) -> pulumi.Output[str]:
        """An ACM certificate for the order domain in this site's region, validated through DNS."""
        name, cfg, tags = self._name, self._args.config, self._args.tags
        certificate = aws.acm.Certificate(
            f"{name}-cert", domain_name=cfg.domain_name, validation_method="DNS", tags=tags, opts=self._child
        )
        option = certificate.domain_validation_options.apply(lambda options: options[0])
        # ACM gives both regions' certificates of one name the same validation CNAME, so a record owned by
        # either stack would be deleted for both by that stack's destroy. The primary stack owns it; the
        # standby's certificate validates through the primary's record (validation_record_fqdns empty: ACM
        # finds the CNAME itself). Never allow_overwrite: two owners of one record is the bug.
        if cfg.is_primary:
            record = aws.route53.Record(
                f"{name}-cert-validation",
                zone_id=cfg.hosted_zone_id,
                name=option.apply(lambda o: o.resource_record_name or ""),
                type=option.apply(lambda o: o.resource_record_type or "CNAME"),
                records=[option.apply(lambda o: o.resource_record_value or "")],
                ttl=300,
                opts=pulumi.ResourceOptions(parent=certificate),
            )
            fqdns: list[pulumi.Input[str]] = [record.fqdn]
        else:
            fqdns = []
        validation = aws.acm.CertificateValidation(
            f"{name}-cert-validated",
            certificate_arn=certificate.arn,
            validation_record_fqdns=fqdns,
            opts=pulumi.ResourceOptions(parent=certificate),
        )
        return validation.certificate_arn

    # -- the database --------------------------------------------------------------------------------------
    def _database(self, network: Network, db_sg: aws.ec2.SecurityGroup) -> None:
        name, args = self._name, self._args
        cfg, tags, db = args.config, args.tags, args.config.database
        subnets = aws.rds.SubnetGroup(
            f"{name}-db-subnets",
            subnet_ids=network.private_subnet_ids,
            description=f"Order database subnets ({cfg.site})",
            tags=tags,
            opts=self._child,
        )
        common = {
            "identifier": f"order-recovery-{cfg.site}",
            "instance_class": db.instance_class,
            "db_subnet_group_name": subnets.name,
            "vpc_security_group_ids": [db_sg.id],
            "storage_encrypted": True,
            "kms_key_id": args.key_arn,
            "deletion_protection": True,
            "publicly_accessible": False,
            "performance_insights_enabled": True,
            "performance_insights_kms_key_id": args.key_arn,
            "performance_insights_retention_period": db.performance_insights_retention_days,
            "maintenance_window": "sun:04:30-sun:05:30",
            # The runbooks connect with IAM tokens on either site, with no password stored anywhere.
            "iam_database_authentication_enabled": True,
            "copy_tags_to_snapshot": True,
            "auto_minor_version_upgrade": True,
            "enabled_cloudwatch_logs_exports": ["postgresql", "upgrade"],
            "tags": with_name(tags, f"order-recovery-{cfg.site}", role="database"),
            # A database is never replaced or deleted by a routine `pulumi up`.
            "opts": pulumi.ResourceOptions(parent=self, protect=True),
        }
        # What a writable primary keeps whichever site it is on: automated backups, a final snapshot on
        # delete, the master password in Secrets Manager, Multi-AZ.
        as_primary = {
            "manage_master_user_password": True,
            "master_user_secret_kms_key_id": args.key_arn,
            "multi_az": True,
            "backup_retention_period": db.backup_retention_days,
            "backup_window": "03:00-04:00",
            "skip_final_snapshot": False,
            "final_snapshot_identifier": f"order-recovery-{cfg.site}-final",
        }
        if cfg.is_primary:
            instance = aws.rds.Instance(  # type: ignore[call-overload]
                f"{name}-db",
                engine="postgres",
                engine_version=db.engine_version,
                db_name=db.name,
                username=db.username,
                storage_type="gp3",
                allocated_storage=db.allocated_storage_gb,
                max_allocated_storage=db.max_allocated_storage_gb,
                **as_primary,
                **common,
            )
        elif db.promoted:
            # The standby after a promotion: the same instance without its replica source. Engine, name,
            # user and storage stay as the replica inherited them (declaring them could force a replacement);
            # if the runbook has not promoted it yet, dropping the source makes `pulumi up` promote it.
            instance = aws.rds.Instance(  # type: ignore[call-overload]
                f"{name}-db", **as_primary, **common
            )
        else:
            # A cross-region replica: the source is the primary's ARN and the replica is encrypted with this
            # region's replica key. Engine, credentials and storage come from the source. RDS for PostgreSQL
            # keeps automated backups of a read replica from 14.1 on (the engine here is 16), so the standby
            # has its own; it takes no final snapshot of a replica, hence skip_final_snapshot.
            instance = aws.rds.Instance(  # type: ignore[call-overload]
                f"{name}-db",
                replicate_source_db=args.replica_source_db_arn,
                multi_az=False,
                backup_retention_period=db.backup_retention_days,
                backup_window="03:00-04:00",
                skip_final_snapshot=True,
                **common,
            )
            # The primary's automated backups, replicated into this region with this region's key: a
            # point-in-time recovery of the primary's data from here, when its own region is lost (the
            # remote copy of the RDS realtime kind, recovery/restore/rds_source.py).
            aws.rds.InstanceAutomatedBackupsReplication(
                f"{name}-db-backup-replication",
                source_db_instance_arn=args.replica_source_db_arn,
                kms_key_id=args.key_arn,
                retention_period=db.backup_retention_days,
                opts=self._child,
            )
        self._db = instance
        self.db_instance_identifier = instance.identifier
        self.db_instance_arn = instance.arn
        self.db_address = instance.address
        self.db_port = instance.port
        self.db_resource_id = instance.resource_id
        self.db_master_secret_arn = (
            instance.master_user_secrets.apply(lambda secrets: secrets[0].secret_arn or "")
            if cfg.is_primary or db.promoted
            else None
        )

    # -- alarms to the team topic ---------------------------------------------------------------------------
    def _alarms(self) -> None:
        name, cfg, tags = self._name, self._args.config, self._args.tags
        notify = [self.team_topic_arn]
        balancer_dims = {"LoadBalancer": self._balancer.arn_suffix}

        def alarm(suffix: str, description: str, **settings: object) -> None:
            aws.cloudwatch.MetricAlarm(  # type: ignore[call-overload]
                f"{name}-{suffix}",
                alarm_description=description,
                alarm_actions=notify,
                ok_actions=notify,
                tags=tags,
                opts=self._child,
                **settings,
            )

        alarm(
            "lb-5xx",
            "The load balancer answers 5xx: no healthy order service behind it",
            namespace="AWS/ApplicationELB",
            metric_name="HTTPCode_ELB_5XX_Count",
            dimensions=balancer_dims,
            statistic="Sum",
            period=60,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            threshold=10,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
        )
        alarm(
            "target-5xx",
            "The order service answers 5xx",
            namespace="AWS/ApplicationELB",
            metric_name="HTTPCode_Target_5XX_Count",
            dimensions=balancer_dims,
            statistic="Sum",
            period=60,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            threshold=10,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
        )
        alarm(
            "unhealthy-hosts",
            "At least one order service host fails the load balancer's health check",
            namespace="AWS/ApplicationELB",
            metric_name="UnHealthyHostCount",
            dimensions={
                "LoadBalancer": self._balancer.arn_suffix,
                "TargetGroup": self._target_group.arn_suffix,
            },
            statistic="Maximum",
            period=60,
            evaluation_periods=3,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
        )
        db_dims = {"DBInstanceIdentifier": self._db.identifier}
        lag_bytes = cfg.database.replication_lag_max_mb * MIB
        if cfg.is_primary:
            # RDS's own view, independent of the watch: WAL the most lagging replica's slot still holds on
            # this source. Bytes, not RDS's ReplicaLag seconds, which grow to minutes whenever the primary is
            # idle. No replica yet means no slot and no data: not an alarm.
            alarm(
                "replication-slot-lag",
                "The standby's replication slot on the primary holds more WAL than the objective allows",
                namespace="AWS/RDS",
                metric_name="OldestReplicationSlotLag",
                dimensions=db_dims,
                statistic="Maximum",
                period=60,
                evaluation_periods=3,
                threshold=lag_bytes,
                comparison_operator="GreaterThanThreshold",
                treat_missing_data="notBreaching",
            )
        elif not cfg.database.promoted:
            # The lag the watch measures (metrics_contract): bytes not replayed, and seconds since the primary
            # was first seen at a position the standby has not replayed.
            # Both stay near 0 when the primary is idle; a silent watch is the watch-silent alarm's job.
            for suffix, metric, threshold in (
                ("replication-lag-bytes", contract.REPLICATION_LAG_BYTES, lag_bytes),
                (
                    "replication-lag-seconds",
                    contract.REPLICATION_LAG_SECONDS,
                    cfg.objectives.replication_lag_max_seconds,
                ),
            ):
                alarm(
                    suffix,
                    f"The standby database lags the primary beyond the objective ({metric.meaning})",
                    **_contract_metric(metric, {contract.SITE: cfg.site}),
                    statistic="Maximum",
                    period=contract.PUBLISH_INTERVAL_SECONDS,
                    evaluation_periods=3,
                    threshold=threshold,
                    comparison_operator="GreaterThanThreshold",
                    treat_missing_data="missing",
                )
        # The watch publishes the age of the newest backup of each kind (oldest over the domains) per site.
        for kind, threshold in (
            ("realtime", cfg.objectives.realtime_backup_max_age_seconds),
            ("daily", cfg.objectives.daily_backup_max_age_hours * 3600),
        ):
            alarm(
                f"backup-age-{kind}",
                f"The newest {kind} backup at this site is older than the objective allows",
                **_contract_metric(
                    contract.BACKUP_AGE_OLDEST_DOMAIN, {contract.SITE: cfg.site, contract.KIND: kind}
                ),
                statistic="Maximum",
                period=300,
                evaluation_periods=1,
                threshold=threshold,
                comparison_operator="GreaterThanThreshold",
                # No data is the watch not running, not a stale backup: the watch-silent alarm says that once.
                treat_missing_data="missing",
            )
        for probe in contract.PROBES:
            alarm(
                f"probe-{probe}",
                f"The watch's {probe} probe fails in most cycles",
                **_contract_metric(contract.PROBE_FAILURES, {contract.SITE: cfg.site, contract.PROBE: probe}),
                statistic="Sum",
                period=300,
                evaluation_periods=1,
                threshold=3,
                comparison_operator="GreaterThanOrEqualToThreshold",
                treat_missing_data="missing",
            )
        # The watch publishes a probe result every cycle; no sample for 15 minutes means nobody is watching.
        # This is the one alarm where missing data is breaching (docs/deploy.md: start the watch).
        alarm(
            "watch-silent",
            "The recovery watch has published nothing for 15 minutes: start it or find why it stopped",
            **_contract_metric(
                contract.PROBE_FAILURES, {contract.SITE: cfg.site, contract.PROBE: contract.PROBES[2]}
            ),
            statistic="SampleCount",
            period=300,
            evaluation_periods=3,
            threshold=1,
            comparison_operator="LessThanThreshold",
            treat_missing_data="breaching",
        )

    # -- the recovery runbooks' role ------------------------------------------------------------------------
    def _operator_role(self, kind: str, description: str, policy: pulumi.Output[str]) -> aws.iam.Role:
        """A role only the configured operators and pipeline assume, with its one inline policy."""
        name, args = self._name, self._args
        role = aws.iam.Role(
            f"{name}-{kind}-role",
            description=description,
            assume_role_policy=json.dumps(assume_role_by_principals(list(args.config.runbook_principals))),
            max_session_duration=3600,
            tags=args.tags,
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{name}-{kind}-policy", role=role.id, policy=policy, opts=pulumi.ResourceOptions(parent=role)
        )
        return role

    def _runbook_role(self) -> None:
        args = self._args
        cfg = args.config
        # The master secrets the runbooks read: this site's once it is a primary, and the primary's while
        # this site's database is its replica (same credentials).
        secrets = [s for s in (self.db_master_secret_arn, args.primary_db_secret_arn) if s is not None]
        policy = pulumi.Output.all(
            args.account_id,
            args.backup_bucket_arn,
            args.key_arn,
            self.db_instance_arn,
            self.db_resource_id,
            args.lock_table_name,
            self.intake_queue_arn,
            self.team_topic_arn,
            self.customer_topic_arn,
            self._group.arn,
            self._dead_letter_queue_arn,
            *secrets,
        ).apply(
            lambda v: json.dumps(
                runbook_role_policy(
                    account_id=v[0],
                    bucket_arn=v[1],
                    other_bucket_arn=other_backup_bucket_pattern(cfg.site),
                    backup_prefix=cfg.backup.prefix,
                    key_arn=v[2],
                    db_instance_arn=v[3],
                    db_resource_id=v[4],
                    db_username=cfg.database.username,
                    db_secret_arns=list(v[11:]),
                    hosted_zone_id=cfg.hosted_zone_id,
                    # The global table answers under one name in both regions.
                    lock_table_arns=[f"arn:aws:dynamodb:*:{v[0]}:table/{v[5]}"],
                    queue_arn=v[6],
                    topic_arns=[v[7], v[8]],
                    auto_scaling_group_arn=v[9],
                    dead_letter_queue_arn=v[10],
                )
            )
        )
        role = self._operator_role("runbook", f"Recovery runbooks acting on the {cfg.site} site", policy)
        self.runbook_role_arn = role.arn

    # -- pruning old backups: its own role, the only one that may delete a backup ------------------------
    def _pruning_role(self) -> None:
        args = self._args
        cfg = args.config
        policy = pulumi.Output.all(
            args.account_id,
            args.backup_bucket_arn,
            args.lock_table_name,
            self.team_topic_arn,
            self.customer_topic_arn,
            args.key_arn,
        ).apply(
            lambda v: json.dumps(
                pruning_role_policy(
                    account_id=v[0],
                    bucket_arn=v[1],
                    other_bucket_arn=other_backup_bucket_pattern(cfg.site),
                    backup_prefix=cfg.backup.prefix,
                    key_arn=v[5],
                    lock_table_arns=[f"arn:aws:dynamodb:*:{v[0]}:table/{v[2]}"],
                    topic_arns=[v[3], v[4]],
                )
            )
        )
        description = f"recovery backup prune on the {cfg.site} site's backups (delete markers only)"
        self.pruning_role_arn = self._operator_role("pruning", description, policy).arn
