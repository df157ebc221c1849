"""IAM, KMS and bucket policy documents as pure functions of plain strings (ARNs, ids).

Keeping them pure lets tests read every statement; the components render them with json.dumps once the
ARNs are known. Least privilege: each role gets only the actions its job needs, on the resources of its
own site (and, for the backup roles, the other site's backup prefix: the toolkit writes every backup to
both sites' buckets), and writers of backups are explicitly denied anything that destroys or unlocks them.
"""

from __future__ import annotations

from typing import Any

from order_infra.config import PROJECT
from recovery.watch.metrics_contract import NAMESPACE as METRIC_NAMESPACE

Document = dict[str, Any]

# Everything that removes a backup or weakens its protection. Denied explicitly so that no later Allow
# (a managed policy attached by hand, say) can grant it to the hosts.
BACKUP_DESTRUCTIVE_ACTIONS = (
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:DeleteBucket",
    "s3:BypassGovernanceRetention",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutReplicationConfiguration",
)
# What even the pruning role may never do: its one destructive action is DeleteObject without a version
# id, which in the versioned, object-locked buckets only puts a delete marker in front of the backup.
PRUNE_NEVER_ACTIONS = tuple(action for action in BACKUP_DESTRUCTIVE_ACTIONS if action != "s3:DeleteObject")


def backup_bucket_name_prefix(site: str) -> str:
    """Each stack names its backup bucket with this prefix (S3 adds a unique suffix)."""
    return f"{PROJECT}-{site}-backups-"


def other_backup_bucket_pattern(site: str) -> str:
    """The other site's backup bucket, by its name prefix: the primary stack is deployed before the standby
    and cannot know the standby bucket's ARN, yet its roles write and prune the remote copy there."""
    other = "standby" if site == "primary" else "primary"
    return f"arn:aws:s3:::{backup_bucket_name_prefix(other)}*"


def key_in_every_region(key_arn: str) -> str:
    """The multi-region site key and its replica: the same key id in any region of the account.

    The replica shares the key material, so allowing it opens nothing the site's own copy does not; the
    other site's bucket encrypts the remote copy's objects with it (SSE-KMS through S3 in that region)."""
    parts = key_arn.split(":")
    if len(parts) != 6 or not parts[5].startswith("key/mrk-"):
        raise ValueError(f"{key_arn} is not a multi-region KMS key ARN")
    return ":".join([*parts[:3], "*", *parts[4:]])


def _doc(*statements: Document) -> Document:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def assume_role_by_service(service: str) -> Document:
    return _doc(
        {
            "Sid": "TrustedService",
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
        }
    )


def assume_role_by_principals(principals: list[str]) -> Document:
    """Only the named roles and users (operators, the pipeline) assume the runbook role, never an account."""
    return _doc(
        {
            "Sid": "NamedRunbookPrincipals",
            "Effect": "Allow",
            "Principal": {"AWS": sorted(principals)},
            "Action": "sts:AssumeRole",
        }
    )


def _via_services(region: str, services: tuple[str, ...]) -> list[str]:
    return [f"{service}.{region}.amazonaws.com" for service in services]


def instance_role_policy(
    *,
    bucket_arn: str,
    logs_prefix: str,
    releases_prefix: str,
    key_arn: str,
    region: str,
    queue_arn: str,
    topic_arns: list[str],
    service_secret_arn: str,
) -> Document:
    """The order hosts: write their own log files, read releases, use the intake queue and the topics.

    They never write under the backup prefix and never get a data key of their own from the site key:
    the key is usable only through S3 (for their log objects and the releases they read), SQS and SNS, so a
    host cannot produce a backup that a restore would take for the toolkit's (docs/deploy.md).
    """
    return _doc(
        {
            "Sid": "WriteOwnLogFiles",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": [f"{bucket_arn}/{logs_prefix}*"],
        },
        {
            "Sid": "ReadReleases",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": [f"{bucket_arn}/{releases_prefix}*"],
        },
        {
            "Sid": "NeverDestroyBackups",
            "Effect": "Deny",
            "Action": list(BACKUP_DESTRUCTIVE_ACTIONS),
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
        },
        {
            "Sid": "SiteKeyOnlyThroughServices",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": [key_arn],
            "Condition": {
                # No direct GenerateDataKey: S3 (log and release objects), SQS and SNS call it for the host.
                "StringEquals": {"kms:ViaService": _via_services(region, ("s3", "sqs", "sns"))},
                # Through S3 only for the bucket (bucket keys) or the host's own prefixes.
                "StringLikeIfExists": {
                    "kms:EncryptionContext:aws:s3:arn": [
                        bucket_arn,
                        f"{bucket_arn}/{logs_prefix}*",
                        f"{bucket_arn}/{releases_prefix}*",
                    ]
                },
            },
        },
        {
            "Sid": "ReadServiceDatabasePassword",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": [service_secret_arn],
        },
        {
            "Sid": "IntakeQueue",
            "Effect": "Allow",
            "Action": [
                "sqs:SendMessage",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            "Resource": [queue_arn],
        },
        {
            "Sid": "NotifyTeamAndCustomers",
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": list(topic_arns),
        },
    )


# The databases of both sites follow one naming scheme, so a site's runbook role can act on the other
# site's instance during failback (re-create the old primary as a replica of the new one).
DB_IDENTIFIER_PATTERN = "order-recovery-*"
# The instances a restore creates from a point in time or a snapshot, and deletes when it is done
# (recovery/drivers/rds.py SCRATCH_PREFIX): the only databases the runbooks may delete.
SCRATCH_IDENTIFIER_PATTERN = "order-recovery-scratch-*"
# The alias of the HMAC key that authenticates backup manifests (recovery/backup/keys.py).
MANIFEST_MAC_KEY_ALIAS = "alias/order-recovery-manifests"


def runbook_role_policy(
    *,
    account_id: str,
    bucket_arn: str,
    other_bucket_arn: str,
    backup_prefix: str,
    key_arn: str,
    db_instance_arn: str,
    db_resource_id: str,
    db_username: str,
    db_secret_arns: list[str],
    hosted_zone_id: str,
    lock_table_arns: list[str],
    queue_arn: str,
    topic_arns: list[str],
    auto_scaling_group_arn: str,
    dead_letter_queue_arn: str,
) -> Document:
    """What the recovery runbooks do at one site: back up, restore, promote, fail back, switch traffic,
    lock, publish the watch's metrics and notify. docs/deploy.md lists every AWS call the toolkit makes
    and the statement here that allows it. `other_bucket_arn` is the other site's backup bucket (or a
    pattern of its name): a backup's remote copy goes there."""
    any_project_db = f"arn:aws:rds:*:{account_id}:db:{DB_IDENTIFIER_PATTERN}"
    scratch_db = f"arn:aws:rds:*:{account_id}:db:{SCRATCH_IDENTIFIER_PATTERN}"
    return _doc(
        {
            "Sid": "ObserveAndPromoteDatabase",
            "Effect": "Allow",
            "Action": [
                "rds:DescribeDBInstances",
                "rds:PromoteReadReplica",
                "rds:ModifyDBInstance",
                "rds:RebootDBInstance",
                "rds:CreateDBSnapshot",
                "rds:DescribeDBSnapshots",
                "rds:DescribePendingMaintenanceActions",
            ],
            "Resource": [db_instance_arn],
        },
        {
            # Failback: the old primary comes back as a read replica of the new one, in either direction:
            # fenced (its security groups), kept as a snapshot, set aside under a new name (a modify),
            # then replaced by a replica under its old name.
            "Sid": "RebuildAsReplicaOfTheOtherSite",
            "Effect": "Allow",
            "Action": [
                "rds:CreateDBInstanceReadReplica",
                "rds:DescribeDBInstances",
                "rds:AddTagsToResource",
                "rds:ModifyDBInstance",
                "rds:CreateDBSnapshot",
            ],
            "Resource": [
                any_project_db,
                f"arn:aws:rds:*:{account_id}:subgrp:*",
                f"arn:aws:rds:*:{account_id}:pg:*",
                f"arn:aws:rds:*:{account_id}:og:*",
            ],
        },
        {
            # A cross-region replica is encrypted with the destination's key: RDS creates grants on it.
            "Sid": "RdsUsesTheSiteKey",
            "Effect": "Allow",
            "Action": ["kms:CreateGrant", "kms:DescribeKey"],
            "Resource": [key_arn],
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
        {
            "Sid": "ConnectWithIamAuthentication",
            "Effect": "Allow",
            "Action": ["rds-db:connect"],
            "Resource": [f"arn:aws:rds-db:*:{account_id}:dbuser:{db_resource_id}/{db_username}"],
        },
        {
            "Sid": "ReadDatabaseMasterSecret",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": sorted(db_secret_arns),
        },
        {
            "Sid": "SwitchTraffic",
            "Effect": "Allow",
            "Action": ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
            "Resource": [f"arn:aws:route53:::hostedzone/{hosted_zone_id}"],
        },
        {
            "Sid": "ReadHealthChecks",
            "Effect": "Allow",
            "Action": [
                "route53:GetHealthCheckStatus",
                "route53:GetHealthCheck",
                "route53:GetChange",
                "route53:ListHealthChecks",
            ],
            "Resource": ["*"],  # health checks and changes have no resource-level permissions
        },
        {
            # The failover runbooks give the writer's service a health check when it has none.
            "Sid": "ManageHealthChecks",
            "Effect": "Allow",
            "Action": ["route53:CreateHealthCheck"],
            "Resource": ["*"],  # CreateHealthCheck has no resource-level permissions
        },
        {
            # Before a traffic move: the new writer's load balancer is there as the target names it.
            "Sid": "ReadLoadBalancers",
            "Effect": "Allow",
            "Action": ["elasticloadbalancing:DescribeLoadBalancers"],
            "Resource": ["*"],  # Describe actions have no resource-level permissions
        },
        {
            "Sid": "ReadAndWriteBackups",
            "Effect": "Allow",
            # AbortMultipartUpload: a backup upload that failed half way leaves no parts behind.
            "Action": ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:AbortMultipartUpload"],
            "Resource": [f"{bucket_arn}/{backup_prefix}*", f"{other_bucket_arn}/{backup_prefix}*"],
        },
        {
            "Sid": "ListBackups",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation"],
            "Resource": [bucket_arn, other_bucket_arn],
        },
        {
            "Sid": "NeverDestroyBackups",
            "Effect": "Deny",
            "Action": list(BACKUP_DESTRUCTIVE_ACTIONS),
            "Resource": _both_buckets(bucket_arn, other_bucket_arn),
        },
        {
            # Both regions' copies of the key: the remote copy's objects are SSE-KMS under the other's.
            "Sid": "UseTheSiteKey",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "kms:DescribeKey"],
            "Resource": [key_in_every_region(key_arn)],
        },
        _runbook_locks(lock_table_arns),
        {
            "Sid": "DrainAndReplayIntake",
            "Effect": "Allow",
            "Action": [
                "sqs:SendMessage",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
            ],
            # The dead-letter queue: intake status reads its depth, found by name from the redrive policy.
            "Resource": [queue_arn, dead_letter_queue_arn],
        },
        _notify(topic_arns),
        {
            "Sid": "ScaleTheOrderService",
            "Effect": "Allow",
            "Action": ["autoscaling:UpdateAutoScalingGroup", "autoscaling:SetDesiredCapacity"],
            "Resource": [auto_scaling_group_arn],
        },
        {
            "Sid": "PublishWatchMetrics",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricData"],
            "Resource": ["*"],  # PutMetricData has no resource type; the namespace condition narrows it
            "Condition": {"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}},
        },
        {
            "Sid": "ObserveTheSite",
            "Effect": "Allow",
            "Action": [
                "autoscaling:DescribeAutoScalingGroups",
                "ec2:DescribeInstances",
                "ec2:DescribeSecurityGroups",
                "cloudwatch:GetMetricData",
                "cloudwatch:GetMetricStatistics",
                "cloudwatch:DescribeAlarms",
                "rds:DescribeDBInstanceAutomatedBackups",
            ],
            "Resource": ["*"],  # Describe*/GetMetric* do not support resource-level permissions
        },
        {
            # Point-in-time recovery and restore points on RDS: a scratch instance beside the live one,
            # from the live instance's backups, its backups replicated into the other region, or a snapshot.
            "Sid": "RestoreIntoScratchInstances",
            "Effect": "Allow",
            "Action": [
                "rds:RestoreDBInstanceToPointInTime",
                "rds:RestoreDBInstanceFromDBSnapshot",
                "rds:AddTagsToResource",
            ],
            "Resource": [
                any_project_db,
                f"arn:aws:rds:*:{account_id}:snapshot:*",
                f"arn:aws:rds:*:{account_id}:auto-backup:*",
                f"arn:aws:rds:*:{account_id}:subgrp:*",
                f"arn:aws:rds:*:{account_id}:pg:*",
                f"arn:aws:rds:*:{account_id}:og:*",
            ],
        },
        {
            # Only the restore's own scratch instances, never a live database.
            "Sid": "DeleteOnlyScratchInstances",
            "Effect": "Allow",
            "Action": ["rds:DeleteDBInstance", "rds:ModifyDBInstance", "rds:DescribeDBInstances"],
            "Resource": [scratch_db],
        },
        {
            # A scratch instance keeps its own RDS-managed master secret (ManageMasterUserPassword): RDS
            # creates it with the caller's rights, and the restore reads it to reach the instance.
            "Sid": "ScratchInstanceSecrets",
            "Effect": "Allow",
            "Action": [
                "secretsmanager:CreateSecret",
                "secretsmanager:TagResource",
                "secretsmanager:RotateSecret",
                "secretsmanager:GetSecretValue",
                "secretsmanager:DescribeSecret",
            ],
            "Resource": [f"arn:aws:secretsmanager:*:{account_id}:secret:rds!*"],
            "Condition": {
                "StringLike": {"secretsmanager:ResourceTag/aws:rds:primaryDBInstanceArn": scratch_db}
            },
        },
        {
            # Restore points: a manual snapshot of the live database and its copy into the other region;
            # the other region's copy of the automated backups, for a site built before its declaration.
            "Sid": "SnapshotsAndTheirCopies",
            "Effect": "Allow",
            "Action": [
                "rds:CreateDBSnapshot",
                "rds:CopyDBSnapshot",
                "rds:DescribeDBSnapshots",
                "rds:AddTagsToResource",
                "rds:StartDBInstanceAutomatedBackupsReplication",
            ],
            "Resource": [
                any_project_db,
                f"arn:aws:rds:*:{account_id}:snapshot:*",
                f"arn:aws:rds:*:{account_id}:auto-backup:*",
            ],
        },
        {
            # The fence RDS allows: the database moved into a security group that admits nobody, made once
            # per VPC (ModifyDBInstance on the database is in ObserveAndPromoteDatabase).
            "Sid": "FenceSecurityGroup",
            "Effect": "Allow",
            "Action": [
                "ec2:CreateSecurityGroup",
                "ec2:RevokeSecurityGroupEgress",
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:CreateTags",
            ],
            "Resource": [
                f"arn:aws:ec2:*:{account_id}:security-group/*",
                f"arn:aws:ec2:*:{account_id}:vpc/*",
            ],
        },
        {
            # The cloud-level fence of a self-managed database (recovery/failover/network_fence.py): the
            # order service's rule on the database's group revoked, kept in a tag first, given back by
            # failback; on the project's own groups only.
            "Sid": "FenceSelfManagedDatabase",
            "Effect": "Allow",
            "Action": [
                "ec2:RevokeSecurityGroupIngress",
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:CreateTags",
                "ec2:DeleteTags",
            ],
            "Resource": [f"arn:aws:ec2:*:{account_id}:security-group/*"],
            "Condition": {"StringEquals": {"aws:ResourceTag/project": PROJECT}},
        },
        # Manifests are authenticated with an HMAC key only the runbooks may use (docs/deploy.md has the
        # commands that create it under this alias).
        _manifest_key(
            "AuthenticateManifests", ["kms:GenerateMac", "kms:VerifyMac", "kms:DescribeKey"], account_id
        ),
    )


def _both_buckets(bucket_arn: str, other_bucket_arn: str) -> list[str]:
    return [bucket_arn, f"{bucket_arn}/*", other_bucket_arn, f"{other_bucket_arn}/*"]


def _runbook_locks(lock_table_arns: list[str]) -> Document:
    return {
        "Sid": "RunbookLocks",
        "Effect": "Allow",
        "Action": [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:DescribeTable",
        ],
        "Resource": sorted(lock_table_arns),
    }


def _notify(topic_arns: list[str]) -> Document:
    return {"Sid": "Notify", "Effect": "Allow", "Action": ["sns:Publish"], "Resource": list(topic_arns)}


def _manifest_key(sid: str, actions: list[str], account_id: str) -> Document:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": actions,
        "Resource": [f"arn:aws:kms:*:{account_id}:key/*"],
        "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": MANIFEST_MAC_KEY_ALIAS}},
    }


def pruning_role_policy(
    *,
    account_id: str,
    bucket_arn: str,
    other_bucket_arn: str,
    backup_prefix: str,
    key_arn: str,
    lock_table_arns: list[str],
    topic_arns: list[str],
) -> Document:
    """What `recovery backup prune` does at one site and nothing more: list and read the backups (its plan
    verifies every one's manifest), delete those outside the retention, take the target's lock and
    announce the run. The buckets are versioned and object-locked: a DeleteObject without a version id
    only puts a delete marker in front of a backup, every version stays until its retention ends and the
    lifecycle expires it. Deleting a version, bypassing or changing the lock is denied (the runbook role
    may not delete at all: pruning is a separate, deliberate act). It prunes both copies: its own site's
    bucket and the other site's (`other_bucket_arn`), reading their SSE-KMS objects through S3 with the
    site key's copy in each region."""
    backups = [f"{bucket_arn}/{backup_prefix}*", f"{other_bucket_arn}/{backup_prefix}*"]
    return _doc(
        {
            "Sid": "ListBackups",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": [bucket_arn, other_bucket_arn],
        },
        {"Sid": "ReadBackups", "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": backups},
        {
            "Sid": "PruneOutsideRetention",
            "Effect": "Allow",
            "Action": ["s3:DeleteObject"],
            "Resource": backups,
        },
        {
            "Sid": "NeverDestroyBackupVersions",
            "Effect": "Deny",
            "Action": list(PRUNE_NEVER_ACTIONS),
            "Resource": _both_buckets(bucket_arn, other_bucket_arn),
        },
        {
            # Reading an SSE-KMS object needs Decrypt on its bucket's key, asked by S3 on the role's behalf.
            "Sid": "ReadBackupsThroughTheSiteKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [key_in_every_region(key_arn)],
            "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
        },
        _manifest_key("VerifyManifests", ["kms:VerifyMac", "kms:DescribeKey"], account_id),
        _runbook_locks(lock_table_arns),
        _notify(topic_arns),
    )


def replication_role_policy(
    *,
    source_bucket_arn: str,
    destination_bucket_arn: str,
    source_key_arn: str,
    destination_key_arn: str,
    source_region: str,
    destination_region: str,
    prefix: str,
) -> Document:
    """S3 replication of one prefix of the primary's bucket (its hosts' log files) into the standby's;
    deletes are never replicated, and nothing outside the prefix is read or written."""
    return _doc(
        {
            "Sid": "ReadReplicationConfiguration",
            "Effect": "Allow",
            "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
            "Resource": [source_bucket_arn],
        },
        {
            "Sid": "ReadSourceVersions",
            "Effect": "Allow",
            "Action": [
                "s3:GetObjectVersionForReplication",
                "s3:GetObjectVersionAcl",
                "s3:GetObjectVersionTagging",
                "s3:GetObjectRetention",
                "s3:GetObjectLegalHold",
            ],
            "Resource": [f"{source_bucket_arn}/{prefix}*"],
        },
        {
            "Sid": "WriteReplicas",
            "Effect": "Allow",
            "Action": ["s3:ReplicateObject", "s3:ReplicateTags"],
            "Resource": [f"{destination_bucket_arn}/{prefix}*"],
        },
        {
            "Sid": "DecryptSourceObjects",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [source_key_arn],
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{source_region}.amazonaws.com"}},
        },
        {
            "Sid": "EncryptReplicas",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": [destination_key_arn],
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{destination_region}.amazonaws.com"}},
        },
    )


def tls_only_bucket_policy(bucket_arn: str) -> Document:
    """Refuse every request that does not come over TLS (1.2 or newer)."""
    return _doc(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyOldTls",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
        },
    )


def autoscaling_service_role_arn(account_id: str) -> str:
    """The ARN of the account's Auto Scaling service-linked role (it exists once, account-wide)."""
    return (
        f"arn:aws:iam::{account_id}:role/aws-service-role/"
        "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    )


def _account_administers(account_id: str) -> Document:
    return {
        "Sid": "AccountAdministersThroughIam",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


_CLOUDWATCH_PUBLISHES = {
    "Sid": "CloudWatchAlarmsPublishToEncryptedTopics",
    "Effect": "Allow",
    "Principal": {"Service": "cloudwatch.amazonaws.com"},
    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
    "Resource": "*",
}


def alarm_topic_key_policy(account_id: str) -> Document:
    """The key of the health-check alarm topic in us-east-1 (only CloudWatch publishes to it)."""
    return _doc(_account_administers(account_id), dict(_CLOUDWATCH_PUBLISHES))


def site_key_policy(account_id: str, autoscaling_role: str) -> Document:
    """The site key: the account administers it through IAM; services that encrypt for us may use it.

    CloudWatch must encrypt alarm messages for the encrypted team topic, and the Auto Scaling service role
    must create grants to launch instances with encrypted volumes. KMS refuses a policy naming a principal
    that does not exist, so the key is declared after that role (see BackupStorage).
    """
    return _doc(
        _account_administers(account_id),
        dict(_CLOUDWATCH_PUBLISHES),
        {
            "Sid": "AutoScalingUsesKeyForVolumes",
            "Effect": "Allow",
            "Principal": {"AWS": autoscaling_role},
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
            ],
            "Resource": "*",
        },
        {
            "Sid": "AutoScalingCreatesGrantsForAwsResources",
            "Effect": "Allow",
            "Principal": {"AWS": autoscaling_role},
            "Action": "kms:CreateGrant",
            "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
    )
