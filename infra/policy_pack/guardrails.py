"""The guardrails as plain functions of what the engine sends: a resource type and its camelCase props.

`__main__.py` wraps them into a pulumi-policy PolicyPack; tests call them directly on every resource the
program registers under mocks and on deliberately bad ones. A function returns the violation messages
(empty when compliant); each message says what is wrong and what to set.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

REQUIRED_TAG_KEYS = ("project", "site", "owner", "cost-center", "managed-by")
BACKUP_CLASSIFICATION = ("data-classification", "backup")

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_ACL = "aws:s3/bucketAcl:BucketAcl"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
BUCKET_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_OBJECT_LOCK = "aws:s3/bucketObjectLockConfiguration:BucketObjectLockConfiguration"
BUCKET_ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
BUCKET_REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
SQS_QUEUE = "aws:sqs/queue:Queue"
SNS_TOPIC = "aws:sns/topic:Topic"
DYNAMODB_TABLE = "aws:dynamodb/table:Table"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
EBS_VOLUME = "aws:ebs/volume:Volume"
KMS_KEY = "aws:kms/key:Key"
AUTOSCALING_GROUP = "aws:autoscaling/group:Group"

# Resource types that accept a `tags` map (the tests check this list against pulumi_aws itself).
TAGGABLE_TYPES = frozenset(
    {
        "aws:acm/certificate:Certificate",
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        DYNAMODB_TABLE,
        "aws:ec2/eip:Eip",
        "aws:ec2/internetGateway:InternetGateway",
        LAUNCH_TEMPLATE,
        "aws:ec2/natGateway:NatGateway",
        "aws:ec2/routeTable:RouteTable",
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/subnet:Subnet",
        "aws:ec2/vpc:Vpc",
        EBS_VOLUME,
        "aws:iam/instanceProfile:InstanceProfile",
        "aws:iam/role:Role",
        KMS_KEY,
        "aws:kms/replicaKey:ReplicaKey",
        "aws:lb/listener:Listener",
        "aws:lb/loadBalancer:LoadBalancer",
        "aws:lb/targetGroup:TargetGroup",
        RDS_CLUSTER,
        RDS_INSTANCE,
        "aws:rds/subnetGroup:SubnetGroup",
        "aws:route53/healthCheck:HealthCheck",
        BUCKET,
        SNS_TOPIC,
        SQS_QUEUE,
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    }
)

PUBLIC_ACLS = frozenset({"public-read", "public-read-write", "authenticated-read"})
KMS_ALGORITHMS = frozenset({"aws:kms", "aws:kms:dsse"})


def _is_true(value: Any) -> bool:
    # Launch templates carry EBS booleans as strings ("true"); everything else as booleans.
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _objects(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [v for v in value if isinstance(v, Mapping)]
    return []


# -- per-resource guardrails -------------------------------------------------------------------------------


def encryption_at_rest(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every store of data is encrypted at rest, with a customer managed KMS key where AWS allows one."""
    if resource_type in (RDS_INSTANCE, RDS_CLUSTER) and not _is_true(props.get("storageEncrypted")):
        return ["database storage is not encrypted: set storageEncrypted=true and kmsKeyId"]
    if resource_type == SQS_QUEUE and not (
        props.get("kmsMasterKeyId") or _is_true(props.get("sqsManagedSseEnabled"))
    ):
        return ["queue is not encrypted: set kmsMasterKeyId to the site key"]
    if resource_type == SNS_TOPIC and not props.get("kmsMasterKeyId"):
        return ["topic is not encrypted: set kmsMasterKeyId to the site key"]
    if resource_type == DYNAMODB_TABLE:
        sse = props.get("serverSideEncryption")
        if not (isinstance(sse, Mapping) and _is_true(sse.get("enabled")) and sse.get("kmsKeyArn")):
            return ["table is not encrypted with the site key: set serverSideEncryption {enabled, kmsKeyArn}"]
    if resource_type == EBS_VOLUME and not _is_true(props.get("encrypted")):
        return ["volume is not encrypted: set encrypted=true"]
    if resource_type == LAUNCH_TEMPLATE:
        mappings = _objects(props.get("blockDeviceMappings"))
        if not mappings:
            return ["launch template root volume is unencrypted: add blockDeviceMappings with ebs.encrypted"]
        for mapping in mappings:
            ebs = mapping.get("ebs")
            if not (isinstance(ebs, Mapping) and _is_true(ebs.get("encrypted"))):
                return [
                    f"launch template volume {mapping.get('deviceName')} is not encrypted: set ebs.encrypted"
                ]
    if resource_type == BUCKET_ENCRYPTION:
        for rule in _objects(props.get("rules")):
            default = rule.get("applyServerSideEncryptionByDefault")
            if not (isinstance(default, Mapping) and default.get("sseAlgorithm") in KMS_ALGORITHMS):
                return ["bucket encryption is not SSE-KMS: set sseAlgorithm=aws:kms with kmsMasterKeyId"]
    if resource_type == BUCKET_REPLICATION:
        for rule in _objects(props.get("rules")):
            destination = rule.get("destination")
            encryption = (
                destination.get("encryptionConfiguration") if isinstance(destination, Mapping) else None
            )
            if not (isinstance(encryption, Mapping) and encryption.get("replicaKmsKeyId")):
                return ["replicas would be stored without the destination key: set encryptionConfiguration"]
    if resource_type == KMS_KEY and not _is_true(props.get("enableKeyRotation")):
        return ["KMS key rotation is off: set enableKeyRotation=true"]
    return []


def _public_statements(policy: Any) -> list[str]:
    if not isinstance(policy, str) or not policy:
        return []
    try:
        document = json.loads(policy)
    except ValueError:
        return ["bucket policy is not valid JSON"]
    found = []
    for statement in _objects(document.get("Statement")):
        principal = statement.get("Principal")
        everyone = principal == "*" or (
            isinstance(principal, Mapping) and principal.get("AWS") in ("*", ["*"])
        )
        if statement.get("Effect") == "Allow" and everyone and not statement.get("Condition"):
            found.append(f"bucket policy statement {statement.get('Sid', '(no Sid)')} allows everyone")
    return found


def no_public_buckets(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No ACL, policy or missing public access block may open a bucket to the internet."""
    if resource_type in (BUCKET, BUCKET_ACL) and props.get("acl") in PUBLIC_ACLS:
        return [f"bucket ACL {props.get('acl')} is public: remove it (ownership is BucketOwnerEnforced)"]
    if resource_type == BUCKET:
        return _public_statements(props.get("policy"))
    if resource_type == BUCKET_POLICY:
        return _public_statements(props.get("policy"))
    if resource_type == BUCKET_PUBLIC_ACCESS_BLOCK:
        off = [
            flag
            for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
            if not _is_true(props.get(flag))
        ]
        if off:
            return [f"public access block leaves {', '.join(off)} off: set all four to true"]
    return []


def database_deletion_protection(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    if resource_type in (RDS_INSTANCE, RDS_CLUSTER) and not _is_true(props.get("deletionProtection")):
        return ["database has no deletion protection: set deletionProtection=true"]
    if resource_type == DYNAMODB_TABLE and not _is_true(props.get("deletionProtectionEnabled")):
        return ["table has no deletion protection: set deletionProtectionEnabled=true"]
    return []


def required_tags(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    if resource_type == AUTOSCALING_GROUP:
        tags = {t.get("key"): t.get("value") for t in _objects(props.get("tags"))}
    elif resource_type in TAGGABLE_TYPES:
        raw = props.get("tags")
        tags = dict(raw) if isinstance(raw, Mapping) else {}
    else:
        return []
    missing = [key for key in REQUIRED_TAG_KEYS if not tags.get(key)]
    if missing:
        return [f"missing required tags {', '.join(missing)}: pass the stack's base tags"]
    return []


RESOURCE_GUARDRAILS = {
    "encryption-at-rest": encryption_at_rest,
    "no-public-buckets": no_public_buckets,
    "database-deletion-protection": database_deletion_protection,
    "required-tags": required_tags,
}


# -- stack-wide guardrails: relations between a bucket and its configuration resources ---------------------


@dataclass(frozen=True)
class StackResource:
    """What a stack-wide guardrail needs of one resource."""

    resource_type: str
    urn: str
    props: Mapping[str, Any]
    property_dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class StackViolation:
    urn: str
    message: str


def _configs_of(
    bucket: StackResource, resources: Iterable[StackResource], config_type: str
) -> list[StackResource]:
    """The configuration resources that point at a bucket.

    In a preview the bucket's id is unknown (reading it raises), so the engine's property dependencies decide;
    the `bucket` value is compared only for a resource that carries no dependency for that property.
    """
    found = []
    for resource in resources:
        if resource.resource_type != config_type:
            continue
        dependencies = resource.property_dependencies.get("bucket")
        if dependencies:
            linked = bucket.urn in dependencies
        else:
            names = {bucket.props.get("bucket"), bucket.props.get("id")} - {None}
            linked = resource.props.get("bucket") in names
        if linked:
            found.append(resource)
    return found


def _is_backup_bucket(bucket: StackResource) -> bool:
    tags = bucket.props.get("tags")
    key, value = BACKUP_CLASSIFICATION
    return isinstance(tags, Mapping) and tags.get(key) == value


def buckets_protected(resources: Sequence[StackResource]) -> list[StackViolation]:
    """Every bucket: SSE-KMS and a full public access block. Backup buckets: versioning and object lock."""
    violations: list[StackViolation] = []
    for bucket in (r for r in resources if r.resource_type == BUCKET):
        encryption = _configs_of(bucket, resources, BUCKET_ENCRYPTION)
        if not any(not encryption_at_rest(BUCKET_ENCRYPTION, c.props) for c in encryption):
            violations.append(StackViolation(bucket.urn, "bucket has no SSE-KMS default encryption"))
        blocks = _configs_of(bucket, resources, BUCKET_PUBLIC_ACCESS_BLOCK)
        if not any(not no_public_buckets(BUCKET_PUBLIC_ACCESS_BLOCK, b.props) for b in blocks):
            violations.append(StackViolation(bucket.urn, "bucket has no complete public access block"))
        if not _is_backup_bucket(bucket):
            continue
        if not _is_true(bucket.props.get("objectLockEnabled")):
            violations.append(
                StackViolation(bucket.urn, "backup bucket was created without objectLockEnabled")
            )
        versioning = _configs_of(bucket, resources, BUCKET_VERSIONING)
        if not any(
            isinstance(v.props.get("versioningConfiguration"), Mapping)
            and v.props["versioningConfiguration"].get("status") == "Enabled"
            for v in versioning
        ):
            violations.append(
                StackViolation(bucket.urn, "backup bucket has no versioning with status Enabled")
            )
        locks = _configs_of(bucket, resources, BUCKET_OBJECT_LOCK)
        if not any(_has_default_retention(lock.props) for lock in locks):
            violations.append(
                StackViolation(bucket.urn, "backup bucket has no default object lock retention")
            )
    return violations


def _has_default_retention(props: Mapping[str, Any]) -> bool:
    rule = props.get("rule")
    retention = rule.get("defaultRetention") if isinstance(rule, Mapping) else None
    return (
        props.get("objectLockEnabled", "Enabled") == "Enabled"
        and isinstance(retention, Mapping)
        and retention.get("mode") in ("GOVERNANCE", "COMPLIANCE")
        and bool(retention.get("days") or retention.get("years"))
    )
