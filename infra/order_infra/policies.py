"""IAM, KMS and bucket policy documents as pure functions of plain strings (ARNs, ids).

Keeping them pure lets tests read every statement; the components render them with json.dumps once the
ARNs are known. Least privilege: each role gets only the actions its job needs, on the resources of its
own site, and writers of backups are explicitly denied anything that destroys or unlocks them.
"""

from __future__ import annotations

from typing import Any

Document = dict[str, Any]

METRIC_NAMESPACE = "OrderRecovery"

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


def assume_role_by_account(account_id: str) -> Document:
    """Operators and pipelines of this account assume the runbook role; their own IAM decides who may."""
    return _doc(
        {
            "Sid": "OperatorsOfThisAccount",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "sts:AssumeRole",
        }
    )


def instance_role_policy(
    *,
    bucket_arn: str,
    backup_prefix: str,
    key_arn: str,
    queue_arn: str,
    topic_arns: list[str],
) -> Document:
    """The order hosts write and read backups, use the site key, the intake queue and the topics."""
    objects = f"{bucket_arn}/{backup_prefix}*"
    return _doc(
        {
            "Sid": "WriteAndReadBackups",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:AbortMultipartUpload"],
            "Resource": [objects],
        },
        {
            "Sid": "ListBackups",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation"],
            "Resource": [bucket_arn],
            "Condition": {"StringLike": {"s3:prefix": [backup_prefix, f"{backup_prefix}*"]}},
        },
        {
            "Sid": "NeverDestroyBackups",
            "Effect": "Deny",
            "Action": list(BACKUP_DESTRUCTIVE_ACTIONS),
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
        },
        {
            "Sid": "WrapAndUnwrapDataKeys",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "kms:DescribeKey"],
            "Resource": [key_arn],
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
        {
            "Sid": "PublishRecoveryMetrics",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricData"],
            "Resource": ["*"],  # PutMetricData has no resource type; the namespace condition narrows it
            "Condition": {"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}},
        },
    )


def runbook_role_policy(
    *,
    bucket_arn: str,
    backup_prefix: str,
    key_arn: str,
    db_instance_arn: str,
    hosted_zone_id: str,
    lock_table_arn: str,
    queue_arn: str,
    topic_arns: list[str],
    auto_scaling_group_arn: str,
) -> Document:
    """What the recovery runbooks do at one site: promote, switch traffic, restore, lock, notify."""
    return _doc(
        {
            "Sid": "ObserveAndPromoteDatabase",
            "Effect": "Allow",
            "Action": [
                "rds:DescribeDBInstances",
                "rds:PromoteReadReplica",
                "rds:RebootDBInstance",
                "rds:CreateDBSnapshot",
                "rds:DescribeDBSnapshots",
            ],
            "Resource": [db_instance_arn],
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
            "Action": ["route53:GetHealthCheckStatus", "route53:GetHealthCheck", "route53:GetChange"],
            "Resource": ["*"],  # health checks and changes have no resource-level permissions
        },
        {
            "Sid": "ReadAndWriteBackups",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion"],
            "Resource": [f"{bucket_arn}/{backup_prefix}*"],
        },
        {
            "Sid": "ListBackups",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation"],
            "Resource": [bucket_arn],
        },
        {
            "Sid": "NeverDestroyBackups",
            "Effect": "Deny",
            "Action": list(BACKUP_DESTRUCTIVE_ACTIONS),
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
        },
        {
            "Sid": "UseTheSiteKey",
            "Effect": "Allow",
            "Action": ["kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "kms:DescribeKey"],
            "Resource": [key_arn],
        },
        {
            "Sid": "RunbookLocks",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
            "Resource": [lock_table_arn],
        },
        {
            "Sid": "DrainAndReplayIntake",
            "Effect": "Allow",
            "Action": [
                "sqs:SendMessage",
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
            ],
            "Resource": [queue_arn],
        },
        {
            "Sid": "Notify",
            "Effect": "Allow",
            "Action": ["sns:Publish"],
            "Resource": list(topic_arns),
        },
        {
            "Sid": "ScaleTheOrderService",
            "Effect": "Allow",
            "Action": ["autoscaling:UpdateAutoScalingGroup", "autoscaling:SetDesiredCapacity"],
            "Resource": [auto_scaling_group_arn],
        },
        {
            "Sid": "ObserveTheSite",
            "Effect": "Allow",
            "Action": [
                "autoscaling:DescribeAutoScalingGroups",
                "ec2:DescribeInstances",
                "cloudwatch:GetMetricData",
                "cloudwatch:DescribeAlarms",
            ],
            "Resource": ["*"],  # Describe*/GetMetricData do not support resource-level permissions
        },
    )


def replication_role_policy(
    *,
    source_bucket_arn: str,
    destination_bucket_arn: str,
    source_key_arn: str,
    destination_key_arn: str,
    source_region: str,
    destination_region: str,
) -> Document:
    """S3 replication of the primary's backups to the standby's bucket; deletes are never replicated."""
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
            "Resource": [f"{source_bucket_arn}/*"],
        },
        {
            "Sid": "WriteReplicas",
            "Effect": "Allow",
            "Action": ["s3:ReplicateObject", "s3:ReplicateTags"],
            "Resource": [f"{destination_bucket_arn}/*"],
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


def site_key_policy(account_id: str) -> Document:
    """The site key: the account administers it through IAM; services that encrypt for us may use it.

    CloudWatch must encrypt alarm messages for the encrypted team topic, and the Auto Scaling service role
    must create grants to launch instances with encrypted volumes.
    """
    autoscaling_role = (
        f"arn:aws:iam::{account_id}:role/aws-service-role/"
        "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    )
    return _doc(
        {
            "Sid": "AccountAdministersThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "CloudWatchAlarmsPublishToEncryptedTopics",
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
        },
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
