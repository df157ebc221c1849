"""The policy pack's guardrails: silent on every resource the program declares, loud on bad ones.

Bad resources are declared with the real pulumi_aws classes under mocks, so the validators see the same
camelCase props the engine would send, not hand-written dictionaries.
"""

from __future__ import annotations

import importlib
import inspect
import json
import runpy
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pulumi_aws as aws
import pytest
from policy_pack.guardrails import (
    AUTOSCALING_GROUP,
    RESOURCE_GUARDRAILS,
    TAGGABLE_TYPES,
    StackResource,
    buckets_protected,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy
from stack_harness import INFRA, Registered, StackRun, run_under_mocks

GOOD_TAGS = {
    "project": "order-recovery",
    "site": "primary",
    "owner": "ops",
    "cost-center": "cc",
    "managed-by": "x",
}
BACKUP_TAGS = {**GOOD_TAGS, "data-classification": "backup"}


def _resource_violations(resource: Registered) -> dict[str, list[str]]:
    found = {}
    for name, check in RESOURCE_GUARDRAILS.items():
        messages = check(resource.typ, resource.inputs)
        if messages:
            found[name] = messages
    return found


def _stack_view(run: StackRun) -> list[StackResource]:
    return [
        StackResource(
            resource_type=r.typ,
            urn=r.urn,
            props={**r.state, "id": r.id},
            property_dependencies=r.property_dependencies,
        )
        for r in run.resources
    ]


def test_the_program_passes_every_guardrail(
    primary: StackRun, standby: StackRun, promoted_standby: StackRun, primary_elsewhere: StackRun
) -> None:
    for run in (primary, standby, promoted_standby, primary_elsewhere):
        checked = [r for r in run.resources if r.typ.startswith("aws:")]
        assert len(checked) > 50
        failures = {r.name: v for r in checked if (v := _resource_violations(r))}
        assert failures == {}
        assert buckets_protected(_stack_view(run)) == []


def _preview_value(value: Any, computed: set[str]) -> Any:
    """What a new stack's preview sends: every value computed from another resource is unknown."""
    if isinstance(value, dict):
        return {k: _preview_value(v, computed) for k, v in value.items()}
    if isinstance(value, list):
        return [_preview_value(v, computed) for v in value]
    if isinstance(value, str) and (value.startswith("arn:") or value in computed):
        return UNKNOWN_STRING_VALUE
    return value


def _computed_values(run: StackRun) -> set[str]:
    values = {r.id for r in run.resources if r.id}
    for resource in run.resources:
        values.update(
            v for v in resource.state.values() if isinstance(v, str) and v not in resource.inputs.values()
        )
    return values - {""}


def _preview_props(run: StackRun, resource: Registered) -> Any:
    return unknown_checking_proxy(_preview_value(dict(resource.inputs), _computed_values(run)))


def test_preview_props_really_hold_unknowns(primary: StackRun) -> None:
    queue = next(r for r in primary.resources if r.name == "primary-intake")
    props = _preview_props(primary, queue)
    with pytest.raises(UnknownValueError):
        props.get("kmsMasterKeyId")  # what the guardrails did before: pulumi-policy then skipped them


def _run_resource_policies(resource_type: str, props: Any) -> list[str]:
    """Each guardrail as the pack runs it; an exception escaping would make pulumi-policy skip it."""
    make_policy = _policy_pack_module()["_resource_policy"]
    reported: list[str] = []
    for name, check in RESOURCE_GUARDRAILS.items():
        policy = make_policy(name, check)
        policy.validate(
            SimpleNamespace(resource_type=resource_type, props=props), lambda m, _u: reported.append(m)
        )
    return reported


def test_guardrails_hold_during_a_new_stacks_preview(primary: StackRun, standby: StackRun) -> None:
    for run in (primary, standby):
        checked = [r for r in run.resources if r.typ.startswith("aws:")]
        failures = {
            r.name: m for r in checked if (m := _run_resource_policies(r.typ, _preview_props(run, r)))
        }
        assert failures == {}
        computed = _computed_values(run)
        resources = [
            SimpleNamespace(
                resource_type=r.typ,
                urn=r.urn,
                props=unknown_checking_proxy(_preview_value(dict(r.inputs), computed)),
                property_dependencies={
                    k: [SimpleNamespace(urn=u) for u in v] for k, v in r.property_dependencies.items()
                },
            )
            for r in run.resources
        ]
        stack_reported: list[str] = []
        _policy_pack_module()["_validate_stack"](
            SimpleNamespace(resources=resources), lambda m, _u, found=stack_reported: found.append(m)
        )
        assert stack_reported == []


def test_bucket_configs_are_linked_by_dependency_as_in_a_preview(primary: StackRun) -> None:
    computed = _computed_values(primary)
    view = [
        StackResource(
            r.typ,
            r.urn,
            unknown_checking_proxy(_preview_value(dict(r.inputs), computed)),
            r.property_dependencies,
        )
        for r in primary.resources
    ]
    assert buckets_protected(view) == []
    # With no link at all, every protection that lives in a separate resource reads as missing.
    unlinked = [StackResource(r.resource_type, r.urn, r.props, {}) for r in view]
    assert sorted(v.message for v in buckets_protected(unlinked)) == [
        "backup bucket has no default object lock retention",
        "backup bucket has no versioning with status Enabled",
        "bucket has no SSE-KMS default encryption",
        "bucket has no complete public access block",
    ]


def _bad_program() -> None:
    aws.rds.Instance("open-db", engine="postgres", instance_class="db.t3.micro", allocated_storage=20,
                     storage_encrypted=False, deletion_protection=False, tags=GOOD_TAGS)  # fmt: skip
    aws.sqs.Queue("plain-queue", tags=GOOD_TAGS)
    aws.sns.Topic("plain-topic", tags=GOOD_TAGS)
    aws.dynamodb.Table(
        "plain-table",
        hash_key="id",
        billing_mode="PAY_PER_REQUEST",
        attributes=[aws.dynamodb.TableAttributeArgs(name="id", type="S")],
        tags=GOOD_TAGS,
    )
    aws.ec2.LaunchTemplate(
        "plain-template",
        image_id="ami-12345678",
        block_device_mappings=[
            aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda",
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(encrypted="false"),
            )
        ],
        tags=GOOD_TAGS,
    )
    aws.ebs.Volume("plain-volume", availability_zone="us-east-1a", size=8, tags=GOOD_TAGS)
    aws.kms.Key("unrotated-key", enable_key_rotation=False, tags=GOOD_TAGS)
    bucket = aws.s3.Bucket("open-backups", tags=BACKUP_TAGS)
    aws.s3.BucketServerSideEncryptionConfiguration(
        "aes-only",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="AES256"
                )
            )
        ],
    )
    aws.s3.BucketPublicAccessBlock(
        "half-block",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=False,
    )
    aws.s3.BucketAcl("public-acl", bucket=bucket.id, acl="public-read")
    aws.s3.BucketPolicy(
        "public-policy",
        bucket=bucket.id,
        policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "Everyone",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": "arn:aws:s3:::open-backups/*",
                    }
                ],
            }
        ),
    )
    aws.s3.BucketVersioning(
        "suspended",
        bucket=bucket.id,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Suspended"),
    )
    aws.s3.BucketReplicationConfig(
        "clear-replicas",
        bucket=bucket.id,
        role="arn:aws:iam::123456789012:role/replication",
        rules=[
            aws.s3.BucketReplicationConfigRuleArgs(
                status="Enabled",
                destination=aws.s3.BucketReplicationConfigRuleDestinationArgs(
                    bucket="arn:aws:s3:::elsewhere"
                ),
            )
        ],
    )
    aws.s3.Bucket("bare-bucket", tags=GOOD_TAGS)
    aws.sqs.Queue("untagged-queue", kms_master_key_id="alias/site", tags={"project": "order-recovery"})
    aws.autoscaling.Group(
        "untagged-group",
        min_size=1,
        max_size=1,
        tags=[aws.autoscaling.GroupTagArgs(key="project", value="order-recovery", propagate_at_launch=True)],
    )


@pytest.fixture(scope="module")
def bad() -> StackRun:
    return run_under_mocks("bad", {}, {}, _bad_program)


@pytest.mark.parametrize(
    ("name", "guardrail", "fragment"),
    [
        ("open-db", "encryption-at-rest", "storageEncrypted=true"),
        ("open-db", "database-deletion-protection", "deletionProtection=true"),
        ("plain-queue", "encryption-at-rest", "queue is not encrypted"),
        ("plain-topic", "encryption-at-rest", "topic is not encrypted"),
        ("plain-table", "encryption-at-rest", "serverSideEncryption"),
        ("plain-table", "database-deletion-protection", "deletionProtectionEnabled=true"),
        ("plain-template", "encryption-at-rest", "/dev/xvda is not encrypted"),
        ("plain-volume", "encryption-at-rest", "volume is not encrypted"),
        ("unrotated-key", "encryption-at-rest", "enableKeyRotation=true"),
        ("aes-only", "encryption-at-rest", "not SSE-KMS"),
        ("clear-replicas", "encryption-at-rest", "encryptionConfiguration"),
        ("half-block", "no-public-buckets", "restrictPublicBuckets off"),
        ("public-acl", "no-public-buckets", "public-read is public"),
        ("public-policy", "no-public-buckets", "Everyone allows everyone"),
        ("untagged-queue", "required-tags", "site, owner, cost-center, managed-by"),
        ("untagged-group", "required-tags", "missing required tags"),
    ],
)
def test_each_bad_resource_is_flagged(bad: StackRun, name: str, guardrail: str, fragment: str) -> None:
    resource = next(r for r in bad.resources if r.name == name)
    violations = _resource_violations(resource)
    assert guardrail in violations, violations
    assert any(fragment in message for message in violations[guardrail]), violations[guardrail]
    # The same violation during a preview, where the bucket ids and ARNs are not known yet.
    assert any(fragment in m for m in _run_resource_policies(resource.typ, _preview_props(bad, resource)))


def test_a_flag_unknown_during_preview_is_not_taken_for_true() -> None:
    props = unknown_checking_proxy(
        {
            "blockDeviceMappings": [{"deviceName": "/dev/xvda", "ebs": {"encrypted": UNKNOWN_STRING_VALUE}}],
            "tags": GOOD_TAGS,
        }
    )
    assert _run_resource_policies("aws:ec2/launchTemplate:LaunchTemplate", props) == [
        "launch template volume /dev/xvda is not encrypted: set ebs.encrypted"
    ]
    # An unknown key reference is a key that will exist: the queue is encrypted.
    queue = unknown_checking_proxy({"kmsMasterKeyId": UNKNOWN_STRING_VALUE, "tags": GOOD_TAGS})
    assert _run_resource_policies("aws:sqs/queue:Queue", queue) == []


def test_bad_buckets_are_flagged_stack_wide(bad: StackRun) -> None:
    by_bucket: dict[str, list[str]] = {}
    for violation in buckets_protected(_stack_view(bad)):
        by_bucket.setdefault(violation.urn.rsplit("::", 1)[1], []).append(violation.message)
    assert sorted(by_bucket["open-backups"]) == sorted(
        [
            "bucket has no SSE-KMS default encryption",
            "bucket has no complete public access block",
            "backup bucket was created without objectLockEnabled",
            "backup bucket has no versioning with status Enabled",
            "backup bucket has no default object lock retention",
        ]
    )
    # Not a backup bucket: only encryption and public access apply.
    assert sorted(by_bucket["bare-bucket"]) == [
        "bucket has no SSE-KMS default encryption",
        "bucket has no complete public access block",
    ]


def test_taggable_types_match_pulumi_aws(primary: StackRun, standby: StackRun, bad: StackRun) -> None:
    types = {r.typ for run in (primary, standby, bad) for r in run.resources if r.typ.startswith("aws:")}
    assert len(types) > 30
    for token in types:
        module, name = token.split(":")[1].split("/")[0], token.rsplit(":", 1)[1]
        cls = getattr(importlib.import_module(f"pulumi_aws.{module}"), name)
        assert cls.pulumi_type == token
        accepts_tags = "tags" in inspect.signature(cls._internal_init).parameters
        if token == AUTOSCALING_GROUP:
            continue  # its tags are a list of {key, value, propagateAtLaunch}, checked on their own
        assert (token in TAGGABLE_TYPES) == accepts_tags, token


def _policy_pack_module() -> dict[str, Any]:
    """Load the pack's entry module without its __main__ block (which would start the gRPC server)."""
    pack_dir = str(INFRA / "policy_pack")
    if pack_dir not in sys.path:
        sys.path.insert(0, pack_dir)
    return runpy.run_path(str(INFRA / "policy_pack" / "__main__.py"), run_name="policy_pack_entry")


def test_policy_pack_wires_every_guardrail_to_report_violation(bad: StackRun) -> None:
    module = _policy_pack_module()
    make_policy: Callable[..., Any] = module["_resource_policy"]
    resource = next(r for r in bad.resources if r.name == "open-db")
    reported: list[tuple[str, str | None]] = []
    for name, check in RESOURCE_GUARDRAILS.items():
        policy = make_policy(name, check)
        assert policy.name == name and policy.description
        args = SimpleNamespace(resource_type=resource.typ, props=resource.inputs)
        policy.validate(args, lambda message, urn: reported.append((message, urn)))
    assert [m for m, _ in reported] == [
        "database storage is not encrypted: set storageEncrypted=true and kmsKeyId",
        "database has no deletion protection: set deletionProtection=true",
    ]

    stack_reported: list[tuple[str, str | None]] = []
    resources = [
        SimpleNamespace(
            resource_type=r.typ,
            urn=r.urn,
            props={**r.state, "id": r.id},
            property_dependencies={
                k: [SimpleNamespace(urn=u) for u in v] for k, v in r.property_dependencies.items()
            },
        )
        for r in bad.resources
    ]
    module["_validate_stack"](
        SimpleNamespace(resources=resources), lambda m, u: stack_reported.append((m, u))
    )
    assert len(stack_reported) == 7
    assert all(
        urn is not None and urn.endswith(("::open-backups", "::bare-bucket")) for _, urn in stack_reported
    )


def test_bucket_configs_without_dependencies_are_linked_by_the_buckets_name(primary: StackRun) -> None:
    # What a stack read back from state sends: known names, no property dependencies.
    by_name = [StackResource(r.resource_type, r.urn, r.props, {}) for r in _stack_view(primary)]
    assert buckets_protected(by_name) == []
