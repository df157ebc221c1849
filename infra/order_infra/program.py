"""Compose one site from the components and name its outputs.

The primary stack builds its site and the multi-region key; the standby stack reads the primary's outputs
through a StackReference, replicates the key, the database and the primary hosts' log files (the toolkit
writes both backup copies itself), and adds the SECONDARY record.
Every AWS resource gets an explicit provider for its region (the default provider is disabled in
Pulumi.yaml), so nothing lands in a region by accident; every provider refuses any account but the
configured one and tags what it creates with the stack's base tags.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from order_infra import outputs as out
from order_infra.backup_storage import (
    BackupReplication,
    BackupReplicationArgs,
    BackupStorage,
    BackupStorageArgs,
)
from order_infra.config import StackConfig
from order_infra.failover_routing import HEALTH_METRICS_REGION, FailoverRouting, FailoverRoutingArgs
from order_infra.order_stack import LOGS_PREFIX, OrderStack, OrderStackArgs
from order_infra.policies import autoscaling_service_role_arn
from order_infra.tags import base_tags


def _provider(name: str, region: pulumi.Input[str], config: StackConfig) -> aws.Provider:
    """A provider for one region that acts only in the stack's account and tags everything it creates."""
    return aws.Provider(
        name,
        region=region,
        allowed_account_ids=[config.account_id],
        default_tags=aws.ProviderDefaultTagsArgs(tags=base_tags(config)),
    )


def build_site(config: StackConfig) -> dict[str, Any]:
    site = config.site
    tags = base_tags(config)
    provider = _provider(f"{site}-aws", config.region, config)
    in_region = pulumi.ResourceOptions(providers=[provider])
    account_id = config.account_id

    primary: pulumi.StackReference | None = None
    if not config.is_primary:
        primary = pulumi.StackReference("primary", stack_name=config.primary_stack)

    # The key policy and the auto scaling groups name the account's Auto Scaling service-linked role; in a
    # fresh account the primary stack creates it (app.createServiceLinkedRole), and both wait for it.
    autoscaling_role: aws.iam.ServiceLinkedRole | None = None
    autoscaling_role_arn: pulumi.Input[str] = autoscaling_service_role_arn(account_id)
    if config.app.create_service_linked_role:
        autoscaling_role = aws.iam.ServiceLinkedRole(
            "autoscaling-service-role",
            aws_service_name="autoscaling.amazonaws.com",
            description="Auto Scaling launches order hosts with volumes encrypted by the site key",
            tags=tags,
            opts=in_region,
        )
        autoscaling_role_arn = autoscaling_role.arn

    storage = BackupStorage(
        f"{site}-backup",
        BackupStorageArgs(
            site=site,
            account_id=account_id,
            backup=config.backup,
            tags=tags,
            autoscaling_role_arn=autoscaling_role_arn,
            autoscaling_role=autoscaling_role,
            primary_key_arn=primary.require_output(out.KMS_KEY_ARN) if primary is not None else None,
            primary_lock_table_arn=primary.require_output(out.LOCK_TABLE_ARN)
            if primary is not None
            else None,
        ),
        opts=in_region,
    )
    orders = OrderStack(
        site,
        OrderStackArgs(
            config=config,
            account_id=account_id,
            tags=tags,
            key_arn=storage.key_arn,
            backup_bucket_name=storage.bucket_name,
            backup_bucket_arn=storage.bucket_arn,
            lock_table_name=storage.lock_table_name,
            autoscaling_role_arn=autoscaling_role_arn,
            autoscaling_role=autoscaling_role,
            replica_source_db_arn=primary.require_output(out.DB_INSTANCE_ARN)
            if primary is not None
            else None,
            primary_db_secret_arn=primary.require_output(out.DB_MASTER_SECRET_ARN)
            if primary is not None
            else None,
        ),
        opts=in_region,
    )
    routing = FailoverRouting(
        f"{site}-traffic",
        FailoverRoutingArgs(
            site=site,
            hosted_zone_id=config.hosted_zone_id,
            record_name=config.domain_name,
            load_balancer_dns_name=orders.load_balancer_dns_name,
            load_balancer_zone_id=orders.load_balancer_zone_id,
            health_check_path=config.app.health_check_path,
            tags=tags,
            account_id=account_id,
            site_region=config.region,
            team_topic_arn=orders.team_topic_arn,
            health_metrics_provider=(
                (
                    provider
                    if config.region == HEALTH_METRICS_REGION
                    else _provider(f"{site}-aws-{HEALTH_METRICS_REGION}", HEALTH_METRICS_REGION, config)
                )
                if config.is_primary
                else None
            ),
        ),
        opts=in_region,
    )

    exported: dict[str, Any] = {
        out.SITE: site,
        out.REGION: config.region,
        out.VPC_ID: orders.vpc_id,
        out.LOAD_BALANCER_ARN: orders.load_balancer_arn,
        out.LOAD_BALANCER_DNS_NAME: orders.load_balancer_dns_name,
        out.LOAD_BALANCER_ZONE_ID: orders.load_balancer_zone_id,
        out.AUTO_SCALING_GROUP_NAME: orders.auto_scaling_group_name,
        out.SERVICE_PORT: config.app.service_port,
        out.DB_INSTANCE_IDENTIFIER: orders.db_instance_identifier,
        out.DB_INSTANCE_ARN: orders.db_instance_arn,
        out.DB_ADDRESS: orders.db_address,
        out.DB_PORT: orders.db_port,
        out.DB_NAME: config.database.name,
        out.DB_USERNAME: config.database.username,
        out.KMS_KEY_ARN: storage.key_arn,
        out.KMS_KEY_ID: storage.key_id,
        out.BACKUP_BUCKET_NAME: storage.bucket_name,
        out.BACKUP_BUCKET_ARN: storage.bucket_arn,
        out.BACKUP_PREFIX: config.backup.prefix,
        out.LOCK_TABLE_NAME: storage.lock_table_name,
        out.LOCK_TABLE_ARN: storage.lock_table_arn,
        out.LOCK_TABLE_REGION: storage.lock_table_region,
        out.DB_RESOURCE_ID: orders.db_resource_id,
        out.DB_ROLE: "primary" if config.is_primary or config.database.promoted else "replica",
        out.SERVICE_DB_SECRET_ARN: orders.service_db_secret_arn,
        out.INTAKE_QUEUE_URL: orders.intake_queue_url,
        out.INTAKE_QUEUE_ARN: orders.intake_queue_arn,
        out.DEAD_LETTER_QUEUE_URL: orders.dead_letter_queue_url,
        out.TEAM_TOPIC_ARN: orders.team_topic_arn,
        out.CUSTOMER_TOPIC_ARN: orders.customer_topic_arn,
        out.HOSTED_ZONE_ID: config.hosted_zone_id,
        out.RECORD_NAME: config.domain_name,
        out.FRONT_DOOR_URL: f"https://{config.domain_name}/",
        out.INSTANCE_ROLE_ARN: orders.instance_role_arn,
        out.RUNBOOK_ROLE_ARN: orders.runbook_role_arn,
        out.PRUNING_ROLE_ARN: orders.pruning_role_arn,
        out.OBJECTIVES: config.objectives.model_dump(by_alias=True),
        out.ADMIN_CIDRS: list(config.network.admin_cidrs),
    }
    if routing.health_check_id is not None:
        exported[out.HEALTH_CHECK_ID] = routing.health_check_id
    if orders.db_master_secret_arn is not None:
        exported[out.DB_MASTER_SECRET_ARN] = orders.db_master_secret_arn

    if primary is not None:
        # The replication rule lives on the primary's bucket, so it needs a provider in the primary's region.
        # It copies the primary hosts' log files only: the toolkit writes both backup copies itself.
        primary_region = primary.require_output(out.REGION)
        primary_provider = _provider("primary-aws", primary_region, config)
        replication = BackupReplication(
            f"{site}-backup-replication",
            BackupReplicationArgs(
                prefix=f"{LOGS_PREFIX}primary/",
                source_bucket_name=primary.require_output(out.BACKUP_BUCKET_NAME),
                source_bucket_arn=primary.require_output(out.BACKUP_BUCKET_ARN),
                source_key_arn=primary.require_output(out.KMS_KEY_ARN),
                source_region=primary_region,
                destination_bucket_arn=storage.bucket_arn,
                destination_key_arn=storage.key_arn,
                destination_region=config.region,
                tags=tags,
                source_provider=primary_provider,
            ),
            opts=in_region,
        )
        exported[out.REPLICATION_ROLE_ARN] = replication.role_arn
    return exported
