"""The guardrails as plain functions of what the engine sends: a resource type and its camelCase props.

`__main__.py` wraps them into a pulumi-policy PolicyPack; tests call them directly on every resource the
program registers under mocks and on deliberately bad ones. A function returns the violation messages
(empty when compliant); each message says what is wrong and what to set.

During a preview, pulumi-policy hands the props through a proxy that raises `UnknownValueError` on any
value not known yet (a new key's ARN, a new bucket's name) and then skips the whole policy as advisory:
a new stack's preview would enforce nothing. Every read here goes through `_get`, which turns an unknown
into `UNKNOWN`: a reference that will exist (a key ARN) counts as set, a flag that must be literally true
does not, so the guardrails decide during the preview as they do during the update.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy.proxy import UnknownValueError

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
DYNAMODB_TABLE_REPLICA = "aws:dynamodb/tableReplica:TableReplica"
SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105 - a resource type token
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
        DYNAMODB_TABLE_REPLICA,
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
        "aws:iam/serviceLinkedRole:ServiceLinkedRole",
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
        SECRET,
        SNS_TOPIC,
        SQS_QUEUE,
        "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    }
)

PUBLIC_ACLS = frozenset({"public-read", "public-read-write", "authenticated-read"})
KMS_ALGORITHMS = frozenset({"aws:kms", "aws:kms:dsse"})


class _Unknown:
    """A value the engine does not know yet (preview). Truthy: a reference that will be set is set."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


def _get(props: Any, key: str | int) -> Any:
    """props[key], None when absent, UNKNOWN when the preview does not know it yet."""
    try:
        if isinstance(props, Mapping):
            return props.get(key)  # the proxy raises UnknownValueError from inside get
        if isinstance(props, Sequence) and not isinstance(props, str) and isinstance(key, int):
            return props[key]
    except UnknownValueError:
        return UNKNOWN
    return None


def _is_true(value: Any) -> bool:
    # Launch templates carry EBS booleans as strings ("true"); everything else as booleans. An unknown flag
    # is not true: the guardrails want these literally set.
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _objects(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = (_get(value, index) for index in range(len(value)))
        return [v for v in items if isinstance(v, Mapping)]
    return []


def _mapping(value: Any) -> dict[str, Any]:
    """A plain dict of a (possibly proxied) mapping; unknown values read as UNKNOWN."""
    if not isinstance(value, Mapping):
        return {}
    return {key: _get(value, key) for key in value}


# -- per-resource guardrails -------------------------------------------------------------------------------


def encryption_at_rest(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every store of data is encrypted at rest, with a customer managed KMS key where AWS allows one."""
    if resource_type in (RDS_INSTANCE, RDS_CLUSTER) and not _is_true(_get(props, "storageEncrypted")):
        return ["database storage is not encrypted: set storageEncrypted=true and kmsKeyId"]
    if resource_type == SQS_QUEUE and not (
        _get(props, "kmsMasterKeyId") or _is_true(_get(props, "sqsManagedSseEnabled"))
    ):
        return ["queue is not encrypted: set kmsMasterKeyId to the site key"]
    if resource_type == SNS_TOPIC and not _get(props, "kmsMasterKeyId"):
        return ["topic is not encrypted: set kmsMasterKeyId to the site key"]
    if resource_type == DYNAMODB_TABLE:
        sse = _get(props, "serverSideEncryption")
        if not (isinstance(sse, Mapping) and _is_true(_get(sse, "enabled")) and _get(sse, "kmsKeyArn")):
            return ["table is not encrypted with the site key: set serverSideEncryption {enabled, kmsKeyArn}"]
    if resource_type == DYNAMODB_TABLE_REPLICA and not _get(props, "kmsKeyArn"):
        return ["table replica is not encrypted with the site key: set kmsKeyArn to the region's key"]
    if resource_type == SECRET and not _get(props, "kmsKeyId"):
        return ["secret is encrypted with the AWS managed key: set kmsKeyId to the site key"]
    if resource_type == EBS_VOLUME and not _is_true(_get(props, "encrypted")):
        return ["volume is not encrypted: set encrypted=true"]
    if resource_type == LAUNCH_TEMPLATE:
        mappings = _objects(_get(props, "blockDeviceMappings"))
        if not mappings:
            return ["launch template root volume is unencrypted: add blockDeviceMappings with ebs.encrypted"]
        for mapping in mappings:
            ebs = _get(mapping, "ebs")
            if not (isinstance(ebs, Mapping) and _is_true(_get(ebs, "encrypted"))):
                device = _get(mapping, "deviceName")
                return [f"launch template volume {device} is not encrypted: set ebs.encrypted"]
    if resource_type == BUCKET_ENCRYPTION:
        for rule in _objects(_get(props, "rules")):
            default = _get(rule, "applyServerSideEncryptionByDefault")
            if not (isinstance(default, Mapping) and _get(default, "sseAlgorithm") in KMS_ALGORITHMS):
                return ["bucket encryption is not SSE-KMS: set sseAlgorithm=aws:kms with kmsMasterKeyId"]
    if resource_type == BUCKET_REPLICATION:
        for rule in _objects(_get(props, "rules")):
            destination = _get(rule, "destination")
            encryption = _get(destination, "encryptionConfiguration")
            if not (isinstance(encryption, Mapping) and _get(encryption, "replicaKmsKeyId")):
                return ["replicas would be stored without the destination key: set encryptionConfiguration"]
    if resource_type == KMS_KEY and not _is_true(_get(props, "enableKeyRotation")):
        return ["KMS key rotation is off: set enableKeyRotation=true"]
    return []


def _public_statements(policy: Any) -> list[str]:
    if policy is UNKNOWN:
        # A policy computed from values not known yet (ARNs): the update's own analysis checks it.
        return []
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
    if resource_type in (BUCKET, BUCKET_ACL) and _get(props, "acl") in PUBLIC_ACLS:
        return [f"bucket ACL {_get(props, 'acl')} is public: remove it (ownership is BucketOwnerEnforced)"]
    if resource_type == BUCKET:
        return _public_statements(_get(props, "policy"))
    if resource_type == BUCKET_POLICY:
        return _public_statements(_get(props, "policy"))
    if resource_type == BUCKET_PUBLIC_ACCESS_BLOCK:
        off = [
            flag
            for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
            if not _is_true(_get(props, flag))
        ]
        if off:
            return [f"public access block leaves {', '.join(off)} off: set all four to true"]
    return []


def database_deletion_protection(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    if resource_type in (RDS_INSTANCE, RDS_CLUSTER) and not _is_true(_get(props, "deletionProtection")):
        return ["database has no deletion protection: set deletionProtection=true"]
    if resource_type == DYNAMODB_TABLE and not _is_true(_get(props, "deletionProtectionEnabled")):
        return ["table has no deletion protection: set deletionProtectionEnabled=true"]
    return []


def required_tags(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    if resource_type == AUTOSCALING_GROUP:
        tags = {_get(t, "key"): _get(t, "value") for t in _objects(_get(props, "tags"))}
    elif resource_type in TAGGABLE_TYPES:
        tags = _mapping(_get(props, "tags"))
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
            names = {_get(bucket.props, "bucket"), _get(bucket.props, "id")} - {None, UNKNOWN}
            linked = _get(resource.props, "bucket") in names
        if linked:
            found.append(resource)
    return found


def _is_backup_bucket(bucket: StackResource) -> bool:
    key, value = BACKUP_CLASSIFICATION
    return _mapping(_get(bucket.props, "tags")).get(key) == value


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
        if not _is_true(_get(bucket.props, "objectLockEnabled")):
            violations.append(
                StackViolation(bucket.urn, "backup bucket was created without objectLockEnabled")
            )
        versioning = _configs_of(bucket, resources, BUCKET_VERSIONING)
        if not any(_get(_get(v.props, "versioningConfiguration"), "status") == "Enabled" for v in versioning):
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
    retention = _get(_get(props, "rule"), "defaultRetention")
    return (
        (_get(props, "objectLockEnabled") or "Enabled") == "Enabled"
        and _get(retention, "mode") in ("GOVERNANCE", "COMPLIANCE")
        and bool(_get(retention, "days") or _get(retention, "years"))
    )
