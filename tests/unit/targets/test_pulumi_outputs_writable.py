"""`recovery target from-pulumi` after a failover: what follows the writable site, and what does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recovery.errors import ConfigError
from recovery.targets.pulumi_outputs import OperatorInputs, target_from_pulumi_outputs, writable_site

REGIONS = {"primary": "us-east-1", "standby": "us-west-2"}


def outputs(site: str, **changes: Any) -> dict[str, Any]:
    region = REGIONS[site]
    values: dict[str, Any] = {
        "site": site,
        "region": region,
        "servicePort": 8080,
        "dbInstanceIdentifier": f"order-recovery-{site}",
        "dbAddress": f"order-recovery-{site}.c1.{region}.rds.amazonaws.com",
        "dbPort": 5432,
        "dbName": "orders",
        "dbUsername": "orders_admin",
        "kmsKeyArn": f"arn:aws:kms:{region}:123456789012:key/mrk-0abc",
        "backupBucketName": f"order-recovery-{site}-backups-1a2b",
        "backupPrefix": "backups/",
        "intakeQueueUrl": f"https://sqs.{region}.amazonaws.com/123456789012/{site}-intake",
        "teamTopicArn": f"arn:aws:sns:{region}:123456789012:{site}-team",
        "customerTopicArn": f"arn:aws:sns:{region}:123456789012:{site}-customers",
        "hostedZoneId": "Z0EXAMPLE",
        "recordName": "orders.example.com",
        "frontDoorUrl": "https://orders.example.com/",
        "objectives": {"rtoSeconds": 900, "rpoSeconds": 60},
        "dbRole": "primary" if site == "primary" else "replica",
    }
    values.update(changes)
    return values


OPERATOR = OperatorInputs(
    primary_hosts=("10.10.10.5",),
    standby_hosts=("10.20.10.7",),
    ssh_user="ec2-user",
    state_dir=Path("/var/lib/order-recovery/production"),
    inventory=Path("/etc/order-recovery/aws_ec2.yml"),
)


@pytest.mark.parametrize(
    ("primary_role", "standby_role", "expected"),
    [
        ("primary", "replica", "primary"),
        ("primary", "primary", "standby"),  # failed over, old primary not rebuilt yet: the promotion wins
        ("replica", "primary", "standby"),  # failed back: the old primary is a replica of the standby
        (None, None, "primary"),  # outputs of a program from before dbRole existed
    ],
)
def test_the_writable_site_is_the_promoted_one(
    primary_role: str | None, standby_role: str | None, expected: str
) -> None:
    primary, standby = outputs("primary"), outputs("standby")
    for values, role in ((primary, primary_role), (standby, standby_role)):
        if role is None:
            del values["dbRole"]
        else:
            values["dbRole"] = role
    assert writable_site(primary, standby) == expected


def test_after_a_failover_the_key_local_copy_queue_and_topics_are_the_standbys() -> None:
    target = target_from_pulumi_outputs(
        outputs("primary"), outputs("standby", dbRole="primary", objectives={"rtoSeconds": 300}), OPERATOR
    )
    assert (target.keys.kms_key_id, target.keys.region) == (
        "arn:aws:kms:us-west-2:123456789012:key/mrk-0abc",
        "us-west-2",
    )
    assert (target.backup.local.bucket, target.backup.local.region) == (
        "order-recovery-standby-backups-1a2b",
        "us-west-2",
    )
    assert target.backup.remote.bucket == "order-recovery-primary-backups-1a2b"
    assert target.intake_queue_url == "https://sqs.us-west-2.amazonaws.com/123456789012/standby-intake"
    assert target.team_topic_arn is not None and target.team_topic_arn.endswith(":standby-team")
    assert target.customer_topic_arn is not None and target.customer_topic_arn.endswith(":standby-customers")
    assert target.objectives.rto_seconds == 300
    # The sites keep the stacks' names, hosts and databases.
    assert target.primary.region == "us-east-1"
    assert target.standby.database.rds_instance_id == "order-recovery-standby"
    assert [h.name for h in target.standby.hosts] == ["standby-app-1"]


def test_before_a_failover_nothing_moves() -> None:
    target = target_from_pulumi_outputs(outputs("primary"), outputs("standby"), OPERATOR)
    assert target.keys.region == "us-east-1"
    assert target.backup.local.bucket == "order-recovery-primary-backups-1a2b"
    assert target.intake_queue_url is not None and target.intake_queue_url.endswith("/primary-intake")


def test_an_unknown_database_role_is_named_in_one_line() -> None:
    with pytest.raises(ConfigError) as caught:
        target_from_pulumi_outputs(outputs("primary"), outputs("standby", dbRole="leader"), OPERATOR)
    message = str(caught.value)
    assert "standby stack's dbRole output is 'leader'" in message and "\n" not in message
