"""The remote copy of a backup lives in the other site's bucket, its objects SSE-KMS under the other region's
copy of the site key: the writable site's runbook role must write, read and list it there, and the pruning
role prune it. The roles' policies, as the mocked stacks render them, are evaluated against each call's
action, resource ARN and KMS request context by a small IAM matcher (Allow unless an explicit Deny)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from order_infra.policies import key_in_every_region, other_backup_bucket_pattern
from stack_harness import StackRun
from test_stack_aws_calls import PRUNE_CALLS, ROLE_POLICY, _table

# What `recovery backup run` sends to each copy's bucket (recovery/backup/stores.py): uploads (single and
# multipart), reads back for verification, listings of the catalog and the preflight's bucket check.
BACKUP_CALLS = (
    ("s3", "PutObject"),
    ("s3", "CreateMultipartUpload"),
    ("s3", "UploadPart"),
    ("s3", "CompleteMultipartUpload"),
    ("s3", "AbortMultipartUpload"),
    ("s3", "GetObject"),
    ("s3", "HeadObject"),
    ("s3", "ListObjectsV2"),
    ("s3", "HeadBucket"),
)
# Operations on the bucket itself; every other S3 call names an object.
BUCKET_LEVEL = {"ListObjectsV2", "HeadBucket"}
# S3 asks KMS for the caller when an SSE-KMS object is written (a data key) or read (its decryption).
S3_WRITES = {"PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"}
S3_READS = {"GetObject", "UploadPart", "CompleteMultipartUpload"}
REMOTE_OBJECT = "backups/daily/orders/2026-12-07-orders-daily-1.rbk"


def _as_list(value: Any) -> list[Any]:
    return [value] if isinstance(value, str | bool) else list(value)


def _like(pattern: str, value: str) -> bool:
    """IAM's wildcards: `*` any run of characters (slashes too), `?` one character; actions ignore case."""
    regex = ".*".join(".".join(map(re.escape, part.split("?"))) for part in pattern.split("*"))
    return re.fullmatch(regex, value, flags=re.IGNORECASE) is not None


def _condition_holds(condition: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        if_exists = operator.endswith("IfExists")
        base = operator.removesuffix("IfExists")
        for key, expected in tests.items():
            if key not in context:
                if if_exists:
                    continue
                return False
            actual = context[key]
            if base == "StringEquals":
                ok = actual in [str(e) for e in _as_list(expected)]
            elif base == "StringLike":
                ok = any(_like(str(e), actual) for e in _as_list(expected))
            elif base == "Bool":
                ok = actual.lower() in [str(e).lower() for e in _as_list(expected)]
            else:
                raise AssertionError(f"the matcher does not know the condition operator {operator}")
            if not ok:
                return False
    return True


def _matches(statement: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    return (
        any(_like(pattern, action) for pattern in _as_list(statement["Action"]))
        and any(_like(pattern, resource) for pattern in _as_list(statement["Resource"]))
        and _condition_holds(statement.get("Condition", {}), context)
    )


def allowed(
    policy: dict[str, Any], action: str, resource: str, context: dict[str, str] | None = None
) -> bool:
    """Whether an identity policy alone allows `action` on `resource` (no explicit Deny, some Allow)."""
    request = context or {}
    statements = policy["Statement"]
    if any(s["Effect"] == "Deny" and _matches(s, action, resource, request) for s in statements):
        return False
    return any(s["Effect"] == "Allow" and _matches(s, action, resource, request) for s in statements)


def _policy(run: StackRun, role: str) -> dict[str, Any]:
    document = next(p for p in run.of_type(ROLE_POLICY) if f"{role}-policy" in p.name).inputs["policy"]
    return dict(json.loads(document))


def _iam_actions() -> dict[tuple[str, str], list[str]]:
    return {(service, operation): actions for service, operation, actions, _ in _table()}


def _denied_s3_calls(policy: dict[str, Any], calls: tuple[tuple[str, str], ...], copy: StackRun) -> list[str]:
    """Every call (and the KMS call S3 makes for it) the policy does not allow on the backups in `copy`'s
    bucket, whose objects are SSE-KMS under `copy`'s region's copy of the site key."""
    bucket_arn, key_arn, region = (copy.outputs[k] for k in ("backupBucketArn", "kmsKeyArn", "region"))
    actions = _iam_actions()
    via_s3 = {"kms:ViaService": f"s3.{region}.amazonaws.com"}
    denied = []
    for service, operation in calls:
        if service != "s3":
            continue
        resource = bucket_arn if operation in BUCKET_LEVEL else f"{bucket_arn}/{REMOTE_OBJECT}"
        denied += [
            f"{a} on {resource}" for a in actions[(service, operation)] if not allowed(policy, a, resource)
        ]
        kms = (["kms:GenerateDataKey"] if operation in S3_WRITES else []) + (
            ["kms:Decrypt"] if operation in S3_READS else []
        )
        denied += [
            f"{a} on {key_arn} for S3 {operation}" for a in kms if not allowed(policy, a, key_arn, via_s3)
        ]
    return denied


def _sites(
    primary: StackRun, standby: StackRun, promoted_standby: StackRun, writable: str
) -> tuple[StackRun, StackRun]:
    """(the writable site's stack, the other site's stack): after a failover the standby writes."""
    return (primary, standby) if writable == "primary" else (promoted_standby, primary)


@pytest.mark.parametrize(("role", "calls"), [("runbook", BACKUP_CALLS), ("pruning", PRUNE_CALLS)])
@pytest.mark.parametrize("writable", ["primary", "standby"])
def test_the_writable_sites_backup_roles_reach_the_remote_copy_and_the_local_one(
    role: str,
    calls: tuple[tuple[str, str], ...],
    writable: str,
    primary: StackRun,
    standby: StackRun,
    promoted_standby: StackRun,
) -> None:
    """`backup run` (runbook role) writes, reads and lists both copies; `backup prune` (pruning role) lists,
    reads and prunes both."""
    local, other = _sites(primary, standby, promoted_standby, writable)
    # The remote copy's objects are encrypted under the other region's copy of the multi-region key.
    assert other.outputs["kmsKeyArn"] != local.outputs["kmsKeyArn"]
    policy = _policy(local, role)
    for copy in (other, local):
        denied = _denied_s3_calls(policy, calls, copy)
        assert not denied, f"the {role} role of the writable {local.stack} in {copy.stack}'s bucket: {denied}"


@pytest.mark.parametrize("role", ["runbook", "pruning"])
def test_in_the_other_sites_bucket_only_the_backup_prefix_and_never_a_versions_destruction(
    role: str, primary: StackRun, standby: StackRun
) -> None:
    policy = _policy(primary, role)
    remote = standby.outputs["backupBucketArn"]
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert not allowed(policy, action, f"{remote}/releases/current"), action
        assert not allowed(policy, action, f"{remote}/logs/standby/app.log"), action
    for action in ("s3:DeleteObjectVersion", "s3:BypassGovernanceRetention", "s3:PutObjectRetention"):
        assert not allowed(policy, action, f"{remote}/{REMOTE_OBJECT}"), action
    assert not allowed(policy, "s3:PutBucketVersioning", remote)
    # Another project's bucket, or this project's under another name, stays out of reach.
    assert not allowed(policy, "s3:GetObject", f"arn:aws:s3:::someone-elses-backups/{REMOTE_OBJECT}")
    # Only the runbook role's own key, in any region; never another key of the account.
    other_key = "arn:aws:kms:us-west-2:123456789012:key/mrk-ffffffffffffffffffffffffffffffff"
    assert not allowed(policy, "kms:Decrypt", other_key, {"kms:ViaService": "s3.us-west-2.amazonaws.com"})


def test_the_matcher_refuses_what_iam_refuses() -> None:
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:Get*"], "Resource": ["arn:aws:s3:::b-*/backups/*"]},
            {"Effect": "Deny", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b-x/backups/secret"]},
            {
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}},
            },
        ]
    }
    assert allowed(policy, "s3:GetObject", "arn:aws:s3:::b-1/backups/a/b")
    assert not allowed(policy, "s3:GetObject", "arn:aws:s3:::b-x/backups/secret")
    assert not allowed(policy, "s3:PutObject", "arn:aws:s3:::b-1/backups/a")
    assert not allowed(policy, "s3:GetObject", "arn:aws:s3:::c-1/backups/a")
    assert allowed(policy, "kms:Decrypt", "k", {"kms:ViaService": "s3.eu-west-1.amazonaws.com"})
    assert not allowed(policy, "kms:Decrypt", "k", {"kms:ViaService": "sqs.eu-west-1.amazonaws.com"})
    assert not allowed(policy, "kms:Decrypt", "k")


def test_s3_replication_never_copies_over_the_toolkits_remote_copy(
    primary: StackRun, standby: StackRun
) -> None:
    """The toolkit writes the remote copy itself: a replica of the local copy under the same keys would land
    on it (or make its write-once put fail). Only the primary hosts' log files are replicated."""
    replication = standby.one("aws:s3/bucketReplicationConfig:BucketReplicationConfig")
    prefixes = [rule["filter"]["prefix"] for rule in replication.inputs["rules"]]
    assert prefixes == ["logs/primary/"]
    backup_prefix = primary.outputs["backupPrefix"]
    for prefix in prefixes:
        # An S3 rule's prefix covers every key starting with it: "" or "b" would cover "backups/...".
        assert not backup_prefix.startswith(prefix) and not prefix.startswith(backup_prefix)
        assert not "releases/current".startswith(prefix)
    policy = _policy(standby, "backup-replication")
    source, destination = primary.outputs["backupBucketArn"], standby.outputs["backupBucketArn"]
    assert not allowed(policy, "s3:GetObjectVersionForReplication", f"{source}/{REMOTE_OBJECT}")
    assert not allowed(policy, "s3:ReplicateObject", f"{destination}/{REMOTE_OBJECT}")
    assert allowed(policy, "s3:ReplicateObject", f"{destination}/logs/primary/app.log")


def test_the_other_sites_bucket_and_key_copies_are_named_without_the_other_stack() -> None:
    assert other_backup_bucket_pattern("primary") == "arn:aws:s3:::order-recovery-standby-backups-*"
    assert other_backup_bucket_pattern("standby") == "arn:aws:s3:::order-recovery-primary-backups-*"
    mrk = "arn:aws:kms:us-east-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef"
    assert key_in_every_region(mrk) == "arn:aws:kms:*:123456789012:key/mrk-0123456789abcdef0123456789abcdef"
    # A single-region key has no copy elsewhere: widening it to every region would be a mistake.
    with pytest.raises(ValueError, match="not a multi-region"):
        key_in_every_region("arn:aws:kms:us-east-1:123456789012:key/0123abcd-0000-0000-0000-000000000000")
