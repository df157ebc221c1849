"""Backup storage of one site: its KMS key, its immutable backup bucket and the runbooks' lock table.

The primary owns a multi-region key; the standby holds a replica of it, so a backup wrapped in one region
can be unwrapped in the other after a site loss. The toolkit writes every backup to both sites' buckets
itself (two copies, each verified against its own manifest), so S3 replication never copies the backup
prefix: `BackupReplication` (declared by the standby stack, the one that knows both ends) copies only the
primary hosts' log files into the standby's bucket (docs/deploy.md, "What S3 replication copies").
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from order_infra.config import BackupConfig, SiteName
from order_infra.policies import (
    backup_bucket_name_prefix,
    replication_role_policy,
    site_key_policy,
    tls_only_bucket_policy,
)


@dataclass(frozen=True)
class BackupStorageArgs:
    site: SiteName
    account_id: pulumi.Input[str]
    backup: BackupConfig
    tags: dict[str, str]
    # The account's Auto Scaling service-linked role, which the key policy names; when this program declares
    # it, the resource too, so the key waits for it (KMS refuses a policy naming a missing principal).
    autoscaling_role_arn: pulumi.Input[str]
    autoscaling_role: pulumi.Resource | None = None
    # The standby passes the primary's multi-region key ARN and gets a replica of it, and the primary's lock
    # table ARN and gets a replica of that global table in its own region.
    primary_key_arn: pulumi.Input[str] | None = None
    primary_lock_table_arn: pulumi.Input[str] | None = None


# The runbooks' lock table: one item per target lock, keyed by this string attribute (docs/deploy.md).
LOCK_TABLE_KEY = "lock_id"
# No TTL on the lock table: a released lease keeps its item (expires_at = 0) so its fencing token only
# ever grows; a TTL on expires_at would delete released items and start tokens again from 1.


class BackupStorage(pulumi.ComponentResource):
    key_arn: pulumi.Output[str]
    key_id: pulumi.Output[str]
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    lock_table_name: pulumi.Output[str]
    lock_table_arn: pulumi.Output[str]
    lock_table_region: pulumi.Output[str]

    def __init__(
        self, name: str, args: BackupStorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("order-recovery:infra:BackupStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key_policy = pulumi.Output.all(args.account_id, args.autoscaling_role_arn).apply(
            lambda values: json.dumps(site_key_policy(values[0], values[1]))
        )
        key_opts = pulumi.ResourceOptions(
            parent=self, depends_on=[args.autoscaling_role] if args.autoscaling_role is not None else []
        )
        description = f"order-recovery {args.site}: backups, database, queues and topics"
        key: aws.kms.Key | aws.kms.ReplicaKey
        if args.primary_key_arn is None:
            key = aws.kms.Key(
                f"{name}-key",
                description=description,
                enable_key_rotation=True,
                multi_region=True,
                deletion_window_in_days=30,
                policy=key_policy,
                tags=args.tags,
                opts=key_opts,
            )
        else:
            # A replica shares the primary's key material and rotation schedule.
            key = aws.kms.ReplicaKey(
                f"{name}-key",
                description=description,
                primary_key_arn=args.primary_key_arn,
                deletion_window_in_days=30,
                policy=key_policy,
                tags=args.tags,
                opts=key_opts,
            )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/order-recovery-{args.site}",
            target_key_id=key.key_id,
            opts=child,
        )

        bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket_prefix=backup_bucket_name_prefix(args.site),
            object_lock_enabled=True,
            force_destroy=False,
            tags={**args.tags, "data-classification": "backup"},
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        bucket_child = pulumi.ResourceOptions(parent=bucket)
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=bucket_child,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=bucket_child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=bucket_child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms",
                        kms_master_key_id=key.arn,
                    ),
                    bucket_key_enabled=True,
                )
            ],
            opts=bucket_child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps(tls_only_bucket_policy(arn))),
            # A bucket policy is refused while the public access block is still being applied.
            opts=pulumi.ResourceOptions(parent=bucket, depends_on=[public_access]),
        )
        aws.s3.BucketObjectLockConfiguration(
            f"{name}-object-lock",
            bucket=bucket.id,
            object_lock_enabled="Enabled",
            rule=aws.s3.BucketObjectLockConfigurationRuleArgs(
                default_retention=aws.s3.BucketObjectLockConfigurationRuleDefaultRetentionArgs(
                    mode=args.backup.object_lock_mode,
                    days=args.backup.object_lock_days,
                )
            ),
            opts=pulumi.ResourceOptions(parent=bucket, depends_on=[versioning]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="backups-colder-then-expire",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=args.backup.prefix),
                    transitions=[
                        aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(
                            days=args.backup.infrequent_access_after_days, storage_class="STANDARD_IA"
                        ),
                        # Instant retrieval: a restore never waits for a thaw.
                        aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(
                            days=args.backup.glacier_after_days, storage_class="GLACIER_IR"
                        ),
                    ],
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        days=args.backup.retention_days
                    ),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=args.backup.object_lock_days
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=7
                    ),
                )
            ],
            opts=pulumi.ResourceOptions(parent=bucket, depends_on=[versioning]),
        )

        self._lock_table(name, args, key)
        self.key_arn = key.arn
        self.key_id = key.key_id
        self.bucket_name = bucket.id
        self.bucket_arn = bucket.arn
        self.register_outputs(
            {
                "keyArn": self.key_arn,
                "keyId": self.key_id,
                "bucketName": self.bucket_name,
                "bucketArn": self.bucket_arn,
                "lockTableName": self.lock_table_name,
                "lockTableArn": self.lock_table_arn,
                "lockTableRegion": self.lock_table_region,
            }
        )

    def _lock_table(self, name: str, args: BackupStorageArgs, key: aws.kms.Key | aws.kms.ReplicaKey) -> None:
        """One lock table both sites see: a DynamoDB global table, its replica in the standby's region.

        The primary stack declares the table (streams on, as global tables need); the standby stack adds its
        region's replica, encrypted with the standby's replica key. Either region's endpoint reads and writes
        the same items, so a controller can still lock the target when the other region is gone.
        """
        if args.primary_lock_table_arn is None:
            table = aws.dynamodb.Table(
                f"{name}-locks",
                billing_mode="PAY_PER_REQUEST",
                hash_key=LOCK_TABLE_KEY,
                attributes=[aws.dynamodb.TableAttributeArgs(name=LOCK_TABLE_KEY, type="S")],
                stream_enabled=True,
                stream_view_type="NEW_AND_OLD_IMAGES",
                server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(
                    enabled=True, kms_key_arn=key.arn
                ),
                point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
                deletion_protection_enabled=True,
                tags=args.tags,
                # The standby stack owns the replica (TableReplica); this stack must not remove it.
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["replicas"]),
            )
            self.lock_table_name = table.name
            self.lock_table_arn = table.arn
            self.lock_table_region = table.arn.apply(lambda arn: arn.split(":")[3])
            return
        replica = aws.dynamodb.TableReplica(
            f"{name}-locks-replica",
            global_table_arn=args.primary_lock_table_arn,
            kms_key_arn=key.arn,
            point_in_time_recovery=True,
            deletion_protection_enabled=True,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.lock_table_name = pulumi.Output.from_input(args.primary_lock_table_arn).apply(
            lambda arn: arn.rsplit("/", 1)[1]
        )
        self.lock_table_arn = replica.arn
        self.lock_table_region = replica.arn.apply(lambda arn: arn.split(":")[3])


@dataclass(frozen=True)
class BackupReplicationArgs:
    # The one prefix replicated: the primary hosts' log files. Never the backup prefix, where a replica
    # would land on the toolkit's own remote copy under the same keys; never releases/, which the deploy
    # step writes into each bucket (a replicated releases/current would overwrite the standby's).
    prefix: str
    source_bucket_name: pulumi.Input[str]
    source_bucket_arn: pulumi.Input[str]
    source_key_arn: pulumi.Input[str]
    source_region: pulumi.Input[str]
    destination_bucket_arn: pulumi.Input[str]
    destination_key_arn: pulumi.Input[str]
    destination_region: str
    tags: dict[str, str]
    # The replication configuration lives on the source bucket, so it is declared in the source's region.
    source_provider: aws.Provider


class BackupReplication(pulumi.ComponentResource):
    role_arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: BackupReplicationArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("order-recovery:infra:BackupReplication", name, None, opts)
        role = aws.iam.Role(
            f"{name}-role",
            description="S3 replication of the primary hosts' log files into the standby region",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "S3Replication",
                            "Effect": "Allow",
                            "Principal": {"Service": "s3.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=role.id,
            policy=pulumi.Output.all(
                args.source_bucket_arn,
                args.destination_bucket_arn,
                args.source_key_arn,
                args.destination_key_arn,
                args.source_region,
            ).apply(
                lambda values: json.dumps(
                    replication_role_policy(
                        source_bucket_arn=values[0],
                        destination_bucket_arn=values[1],
                        source_key_arn=values[2],
                        destination_key_arn=values[3],
                        source_region=values[4],
                        destination_region=args.destination_region,
                        prefix=args.prefix,
                    )
                )
            ),
            opts=pulumi.ResourceOptions(parent=role),
        )
        aws.s3.BucketReplicationConfig(
            f"{name}-config",
            bucket=args.source_bucket_name,
            role=role.arn,
            rules=[
                aws.s3.BucketReplicationConfigRuleArgs(
                    id="primary-logs-to-standby",
                    status="Enabled",
                    filter=aws.s3.BucketReplicationConfigRuleFilterArgs(prefix=args.prefix),
                    # Deletes (delete markers) stay local: the standby keeps the logs of a lost primary.
                    delete_marker_replication=aws.s3.BucketReplicationConfigRuleDeleteMarkerReplicationArgs(
                        status="Disabled"
                    ),
                    source_selection_criteria=aws.s3.BucketReplicationConfigRuleSourceSelectionCriteriaArgs(
                        sse_kms_encrypted_objects=aws.s3.BucketReplicationConfigRuleSourceSelectionCriteriaSseKmsEncryptedObjectsArgs(
                            status="Enabled"
                        )
                    ),
                    destination=aws.s3.BucketReplicationConfigRuleDestinationArgs(
                        bucket=args.destination_bucket_arn,
                        storage_class="STANDARD",
                        encryption_configuration=aws.s3.BucketReplicationConfigRuleDestinationEncryptionConfigurationArgs(
                            replica_kms_key_id=args.destination_key_arn
                        ),
                        # Replication Time Control: 15 minutes, with metrics so lag is observable.
                        replication_time=aws.s3.BucketReplicationConfigRuleDestinationReplicationTimeArgs(
                            status="Enabled",
                            time=aws.s3.BucketReplicationConfigRuleDestinationReplicationTimeTimeArgs(
                                minutes=15
                            ),
                        ),
                        metrics=aws.s3.BucketReplicationConfigRuleDestinationMetricsArgs(
                            status="Enabled",
                            event_threshold=aws.s3.BucketReplicationConfigRuleDestinationMetricsEventThresholdArgs(
                                minutes=15
                            ),
                        ),
                    ),
                )
            ],
            opts=pulumi.ResourceOptions(parent=self, provider=args.source_provider, depends_on=[policy]),
        )
        self.role_arn = role.arn
        self.register_outputs({"roleArn": self.role_arn})
