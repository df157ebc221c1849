"""Stack config validation: the shipped stack files parse, and each wrong value is named in one line."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from order_infra.config import StackConfigError, parse_stack_config
from stack_harness import stack_config

PREFIX = "order-recovery:"


def raw(stack: str) -> dict[str, Any]:
    """The stack file's values as the program reads them: without the namespace, objects decoded."""
    values: dict[str, Any] = {}
    for key, value in stack_config(stack).items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX) :]
        values[name] = json.loads(value) if value.startswith(("{", "[")) else value
    return values


def test_shipped_stack_files_parse() -> None:
    primary = parse_stack_config(raw("primary"))
    standby = parse_stack_config(raw("standby"))
    assert (primary.site, primary.region, primary.primary_stack) == ("primary", "us-east-1", None)
    assert (standby.site, standby.region) == ("standby", "us-west-2")
    assert standby.primary_stack == "example-org/order-recovery/primary"
    assert primary.network.availability_zones == ("us-east-1a", "us-east-1b")
    assert primary.backup.retention_days == 365
    assert primary.objectives.rto_seconds == 900
    assert primary.domain_name == standby.domain_name
    assert primary.hosted_zone_id == standby.hosted_zone_id


def test_stack_files_disable_the_default_aws_provider() -> None:
    for stack in ("primary", "standby"):
        assert json.loads(stack_config(stack)["pulumi:disable-default-providers"]) == ["aws"]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(values: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = values
        for part in parents:
            node = node[part]
        node[leaf] = value

    return change


@pytest.mark.parametrize(
    ("change", "where", "fragment"),
    [
        (_set("network.vpcCidr", "10.10.0.1/16"), "network.vpcCidr", "not a network CIDR"),
        (_set("network.publicSubnetCidrs", ["10.10.0.0/24", "10.99.1.0/24"]), "network", "outside vpcCidr"),
        (_set("network.privateSubnetCidrs", ["10.10.0.0/24", "10.10.11.0/24"]), "network", "overlap"),
        (_set("network.availabilityZones", ["us-east-1a"]), "network.availabilityZones", "at least 2"),
        (_set("network.adminCidrs", []), "network.adminCidrs", "at least 1"),
        (_set("app.desiredCapacity", 9), "app", "minSize <= desiredCapacity <= maxSize"),
        (_set("app.servicePort", 80), "app.servicePort", "greater than or equal to 1024"),
        (
            _set("database.backupRetentionDays", 0),
            "database.backupRetentionDays",
            "greater than or equal to 1",
        ),
        (
            _set("database.performanceInsightsRetentionDays", 30),
            "database.performanceInsightsRetentionDays",
            "7, 731",
        ),
        (_set("backup.objectLockDays", 400), "backup", "objectLockDays must not exceed retentionDays"),
        (_set("backup.glacierAfterDays", 45), "backup", "at least infrequentAccessAfterDays + 30"),
        (_set("backup.objectLockMode", "LOOSE"), "backup.objectLockMode", "GOVERNANCE"),
        (_set("objectives.rtoSeconds", 0), "objectives.rtoSeconds", "greater than 0"),
        (
            _set("objectives.dailyBackupMaxAgeHours", 0),
            "objectives.dailyBackupMaxAgeHours",
            "greater than 0",
        ),
        (_set("region", "mars-1"), "region", "pattern"),
        (_set("hostedZoneId", "zone"), "hostedZoneId", "pattern"),
        (
            _set("primaryStack", "org/order-recovery/primary"),
            "(top level)",
            "belongs to the standby stack only",
        ),
        (_set("colour", "blue"), "colour", "Extra inputs are not permitted"),
        (_set("accountId", "12345"), "accountId", "pattern"),
        (
            _set("runbookPrincipals", ["arn:aws:iam::123456789012:root"]),
            "runbookPrincipals",
            "name the principals that run runbooks, not an account",
        ),
        (_set("runbookPrincipals", []), "runbookPrincipals", "at least 1"),
        (
            _set("database.promoted", True),
            "(top level)",
            "database.promoted belongs to the standby stack only",
        ),
    ],
)
def test_wrong_value_is_named_in_one_line(
    change: Callable[[dict[str, Any]], None], where: str, fragment: str
) -> None:
    values = copy.deepcopy(raw("primary"))
    change(values)
    with pytest.raises(StackConfigError) as caught:
        parse_stack_config(values)
    message = str(caught.value)
    assert message.startswith(f"config order-recovery:{where}: ")
    assert fragment in message
    assert message.endswith("fix it in Pulumi.<stack>.yaml")
    assert "\n" not in message


def test_standby_without_primary_stack_is_refused() -> None:
    values = raw("standby")
    del values["primaryStack"]
    with pytest.raises(StackConfigError, match="needs primaryStack"):
        parse_stack_config(values)


def test_missing_section_is_named() -> None:
    values = raw("primary")
    del values["database"]
    with pytest.raises(StackConfigError, match=r"^config order-recovery:database: Field required"):
        parse_stack_config(values)


def test_service_linked_role_is_created_by_the_primary_only() -> None:
    values = raw("standby")
    values["app"]["createServiceLinkedRole"] = True
    with pytest.raises(StackConfigError, match="createServiceLinkedRole belongs to the primary stack only"):
        parse_stack_config(values)


def test_account_and_principals_are_required() -> None:
    for key in ("accountId", "runbookPrincipals"):
        values = raw("primary")
        del values[key]
        with pytest.raises(StackConfigError, match=f"^config order-recovery:{key}: Field required"):
            parse_stack_config(values)


@pytest.mark.parametrize("days", [7, 62, 731])
def test_performance_insights_retention_accepts_what_aws_does(days: int) -> None:
    values = raw("primary")
    values["database"]["performanceInsightsRetentionDays"] = days
    assert parse_stack_config(values).database.performance_insights_retention_days == days


def test_bounds_are_inclusive_where_aws_allows_equality() -> None:
    values = raw("primary")
    values["app"].update(minSize=3, desiredCapacity=3, maxSize=3)
    # S3 accepts GLACIER_IR exactly 30 days after STANDARD_IA.
    values["backup"].update(infrequentAccessAfterDays=30, glacierAfterDays=60)
    config = parse_stack_config(values)
    assert (config.app.desired_capacity, config.backup.glacier_after_days) == (3, 60)


def test_several_wrong_values_name_the_first_and_count_the_rest() -> None:
    values = raw("primary")
    values["region"] = "mars-1"
    values["hostedZoneId"] = "zone"
    values["owner"] = ""
    with pytest.raises(StackConfigError, match=r"\(and 2 more\); fix it in Pulumi.<stack>.yaml$"):
        parse_stack_config(values)
