"""Every AWS call the toolkit makes has its IAM permission in the runbook role (docs/deploy.md's table), and
the standby declares the replication of the primary's automated backups."""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
import pytest
from stack_harness import REPO, StackRun

ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
BACKUP_REPLICATION = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
RDS = "aws:rds/instance:Instance"
SERVICES = {
    "S3": "s3",
    "KMS": "kms",
    "DynamoDB": "dynamodb",
    "SNS": "sns",
    "SQS": "sqs",
    "Secrets Manager": "secretsmanager",
    "RDS": "rds",
    "EC2": "ec2",
    "CloudWatch": "cloudwatch",
    "Route53": "route53",
    "Elastic Load Balancing": "elbv2",
}
# Where a service's IAM action prefix is not its botocore name.
IAM_PREFIXES = {"elbv2": "elasticloadbalancing"}
# Method names in recovery/ that match an AWS operation but are not AWS calls.
NOT_AWS_CALLS = {
    "verify": "Catalog.verify (a backup's copies against its manifest), not KMS Verify",
    "list_keys": "ObjectStore.list_keys (a listing under a prefix), not KMS ListKeys",
    "encrypt": "AES-GCM in the backup codec, not KMS Encrypt",
    "create_snapshot": "RdsDriver.create_snapshot (RDS CreateDBSnapshot), not EC2 CreateSnapshot",
    "copy_snapshot": "RdsDriver.copy_snapshot (RDS CopyDBSnapshot), not EC2 CopySnapshot",
}
TABLE_HEADING = "## Every AWS call the toolkit makes, and its permission"
PRUNING_ROLE = "pruning role: "
# Every operation `recovery backup prune` sends (recovery/backup/prune.py and the engine around it): the
# catalog listed and shallow-verified (manifests authenticated), the lock, the run's announcements, and
# the deletes.
PRUNE_CALLS = (
    ("s3", "ListObjectsV2"),
    ("s3", "GetObject"),
    ("s3", "HeadObject"),
    ("s3", "HeadBucket"),
    ("s3", "DeleteObject"),
    ("kms", "DescribeKey"),
    ("kms", "VerifyMac"),
    ("dynamodb", "GetItem"),
    ("dynamodb", "UpdateItem"),
    ("sns", "Publish"),
)


def _table() -> list[tuple[str, str, list[str], str]]:
    """(service, operation, IAM actions, statement) per row of docs/deploy.md's table."""
    text = (REPO / "docs" / "deploy.md").read_text()
    section = text.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].endswith("`") or cells[0].startswith("API"):
            continue
        service, operation = re.fullmatch(r"(.+?) `(\w+)`", cells[0]).groups()  # type: ignore[union-attr]
        rows.append((SERVICES[service], operation, re.findall(r"`([\w:]+)`", cells[1]), cells[3]))
    return rows


def _calls_in_code() -> dict[tuple[str, str], set[str]]:
    """Every AWS operation recovery/ calls (outside the lab's own set-up), with the files it is called in."""
    session = botocore.session.get_session()
    by_method: dict[str, list[tuple[str, str]]] = {}
    for service in SERVICES.values():
        for operation in session.get_service_model(service).operation_names:
            by_method.setdefault(botocore.xform_name(operation), []).append((service, operation))
    found: dict[tuple[str, str], set[str]] = {}
    calls = re.compile(r"\.get_paginator\(\"([a-z0-9_]+)\"\)|\.([a-z][a-z0-9_]+)\(")
    for path in sorted((REPO / "recovery").rglob("*.py")):
        if path.parent.name == "lab":
            continue
        for match in calls.finditer(path.read_text()):
            method = match.group(1) or match.group(2)
            if method in NOT_AWS_CALLS:
                continue
            for service, operation in by_method.get(method, ()):
                found.setdefault((service, operation), set()).add(str(path.relative_to(REPO)))
    return found


def _waits_in_code() -> dict[tuple[str, str], set[str]]:
    """The operation each boto3 waiter the code waits with polls (waiters are named, not called; the
    RDS driver's `_wait("<waiter>", ...)` and any `get_waiter("<waiter>")`), with the files."""
    session = botocore.session.get_session()
    models = {service: session.get_waiter_model(service) for service in ("rds", "ec2", "s3")}
    named = re.compile(r"(?:_wait|get_waiter)\(\s*\"([a-z0-9_]+)\"")
    found: dict[tuple[str, str], set[str]] = {}
    for path in sorted((REPO / "recovery").rglob("*.py")):
        if path.parent.name == "lab":
            continue
        for name in named.findall(path.read_text()):
            for service, model in models.items():
                # The model names waiters in CamelCase (DBInstanceAvailable), the code as boto3 does.
                camel = next((w for w in model.waiter_names if botocore.xform_name(w) == name), None)
                if camel is not None:
                    operation = model.get_waiter(camel).operation
                    found.setdefault((service, operation), set()).add(str(path.relative_to(REPO)))
    return found


def test_the_table_lists_what_every_waiter_polls() -> None:
    listed = {(service, operation) for service, operation, _, _ in _table()}
    waits = _waits_in_code()
    # The RDS driver waits for instances, snapshots and deletions (a broken scan cannot pass silently).
    assert {("rds", "DescribeDBInstances"), ("rds", "DescribeDBSnapshots")} <= set(waits)
    assert not set(waits) - listed, f"waiters poll operations missing from the table: {set(waits) - listed}"


def _statements(run: StackRun, role: str = "runbook") -> dict[str, dict[str, Any]]:
    policy = next(p for p in run.of_type(ROLE_POLICY) if f"{role}-policy" in p.name)
    return {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def test_the_table_lists_every_aws_call_in_the_code() -> None:
    listed = {(service, operation) for service, operation, _, _ in _table()}
    called = _calls_in_code()
    # The scan finds what the code calls (a sample, so a broken scan cannot pass silently).
    for expected in (("rds", "RestoreDBInstanceToPointInTime"), ("s3", "PutObject"), ("kms", "GenerateMac")):
        assert expected in called
    missing = {
        f"{service} {operation} ({', '.join(sorted(files))})"
        for (service, operation), files in called.items()
    }
    missing -= {f"{s} {o} ({', '.join(sorted(called[(s, o)]))})" for s, o in listed if (s, o) in called}
    assert not missing, f"AWS calls missing from docs/deploy.md's table: {sorted(missing)}"
    assert not listed - set(called), (
        f"rows for calls the code no longer makes: {sorted(listed - set(called))}"
    )


@pytest.mark.parametrize("stack", ["primary", "standby", "promoted_standby"])
def test_every_listed_action_is_allowed_by_its_statement(stack: str, request: pytest.FixtureRequest) -> None:
    run: StackRun = request.getfixturevalue(stack)
    statements = _statements(run)
    denied = {a for s in statements.values() if s["Effect"] == "Deny" for a in _actions(s)}
    allowed = {a for s in statements.values() if s["Effect"] == "Allow" for a in _actions(s)}
    for service, operation, actions, where in _table():
        if where == "game day only: not granted":
            # Fault injection runs with the drill operator's credentials, never the runbook role's.
            assert not set(actions) & allowed, f"{stack}: the runbook role may {actions}"
            continue
        if where.startswith("denied: "):
            sid = where.removeprefix("denied: ").split(" ", 1)[0].rstrip(";")
            assert statements[sid]["Effect"] == "Deny" and set(actions) <= set(_actions(statements[sid]))
            if PRUNING_ROLE in where:
                # Denied to the runbook role, granted to the pruning role only.
                pruning = _statements(run, "pruning")[where.split(PRUNING_ROLE, 1)[1].strip()]
                assert pruning["Effect"] == "Allow" and set(actions) <= set(_actions(pruning)), where
            continue
        statement = statements[where]
        assert statement["Effect"] == "Allow", (service, operation)
        for action in actions:
            assert action.startswith(f"{IAM_PREFIXES.get(service, service)}:"), (operation, action)
            assert action in _actions(statement), f"{stack}: {where} lacks {action} for {service} {operation}"
            assert action not in denied, f"{stack}: {action} is denied"


def test_only_scratch_instances_may_be_deleted_and_their_secrets_read(primary: StackRun) -> None:
    statements = _statements(primary)
    scratch = "arn:aws:rds:*:123456789012:db:order-recovery-scratch-*"
    assert statements["DeleteOnlyScratchInstances"]["Resource"] == [scratch]
    secrets = statements["ScratchInstanceSecrets"]
    assert secrets["Condition"] == {
        "StringLike": {"secretsmanager:ResourceTag/aws:rds:primaryDBInstanceArn": scratch}
    }
    mac = statements["AuthenticateManifests"]
    assert mac["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/order-recovery-manifests"}
    }


def test_the_standby_replicates_the_primarys_automated_backups_into_its_region(
    primary: StackRun, standby: StackRun, promoted_standby: StackRun
) -> None:
    replication = standby.one(BACKUP_REPLICATION)
    assert replication.inputs["sourceDbInstanceArn"] == primary.outputs["dbInstanceArn"]
    assert replication.inputs["kmsKeyId"] == standby.outputs["kmsKeyArn"]
    assert replication.inputs["retentionPeriod"] == 14
    assert standby.region_of(replication) == "us-west-2"
    # The primary has nothing to replicate from; a promoted standby no longer replicates the old primary.
    assert primary.of_type(BACKUP_REPLICATION) == []
    assert promoted_standby.of_type(BACKUP_REPLICATION) == []


def test_the_docs_table_is_read() -> None:
    rows = _table()
    assert len(rows) >= 40
    assert ("rds", "DeleteDBInstance", ["rds:DeleteDBInstance"], "DeleteOnlyScratchInstances") in rows


@pytest.mark.parametrize("stack", ["primary", "standby"])
def test_the_pruning_role_allows_what_prune_calls_and_never_a_versions_deletion(
    stack: str, request: pytest.FixtureRequest
) -> None:
    run: StackRun = request.getfixturevalue(stack)
    statements = _statements(run, "pruning")
    allowed = {a for s in statements.values() if s["Effect"] == "Allow" for a in _actions(s)}
    denied = {a for s in statements.values() if s["Effect"] == "Deny" for a in _actions(s)}
    table = {(service, operation): actions for service, operation, actions, _ in _table()}
    for call in PRUNE_CALLS:
        assert set(table[call]) <= allowed - denied, f"{stack}: the pruning role cannot {call}"
    # Its only write is a delete under the backup prefix (a delete marker in the versioned bucket).
    reads = ("List", "Get", "Describe", "Verify", "Decrypt")
    writes = {a for a in allowed if not a.split(":")[1].startswith(reads)}
    assert writes == {
        "s3:DeleteObject",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "sns:Publish",
    }
    bucket = run.outputs["backupBucketArn"]
    other = f"arn:aws:s3:::order-recovery-{'standby' if stack == 'primary' else 'primary'}-backups-*"
    assert statements["PruneOutsideRetention"]["Resource"] == [f"{bucket}/backups/*", f"{other}/backups/*"]
    assert {
        "s3:DeleteObjectVersion",
        "s3:BypassGovernanceRetention",
        "s3:PutObjectRetention",
        "s3:PutBucketObjectLockConfiguration",
        "s3:PutLifecycleConfiguration",
        "s3:PutBucketVersioning",
    } <= denied
    assert statements["NeverDestroyBackupVersions"]["Resource"] == [
        bucket,
        f"{bucket}/*",
        other,
        f"{other}/*",
    ]
    # The runbook role still may not delete a backup, and the pruning role is a role of its own.
    assert "s3:DeleteObject" in _actions(_statements(run)["NeverDestroyBackups"])
    assert run.outputs["pruningRoleArn"] != run.outputs["runbookRoleArn"]
