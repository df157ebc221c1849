"""The target model and loader, the Pulumi outputs converter, and `recovery target` on the command line."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from recovery.cli.main import main
from recovery.errors import ConfigError, ExitCode, TargetNotFound, UsageError
from recovery.targets import Target, load_target, resolve_target_path
from recovery.targets.load import write_target
from recovery.targets.pulumi_outputs import (
    REQUIRED_OUTPUTS,
    OperatorInputs,
    read_stack_outputs,
    target_from_pulumi_outputs,
)


def _site(name: str, address: str) -> dict[str, Any]:
    return {
        "name": name,
        "region": "us-east-1" if name == "primary" else "us-west-2",
        "hosts": [
            {
                "name": f"{name}-app",
                "address": address,
                "ssh_port": 2222,
                "ssh_user": "orderlab",
                "base_dir": f"/srv/{name}",
                "service_port": 8080,
            }
        ],
        "database": {"address": address, "port": 5432, "passfile": "/etc/pgpass"},
    }


def valid_target() -> dict[str, Any]:
    return {
        "name": "staging",
        "kind": "aws",
        "state_dir": "/var/lib/order-recovery/staging",
        "inventory": "/etc/order-recovery/hosts.yml",
        "primary": _site("primary", "10.0.0.11"),
        "standby": _site("standby", "10.1.0.12"),
        "backup": {
            "local": {"bucket": "backups-primary", "region": "us-east-1"},
            "remote": {"bucket": "backups-standby", "region": "us-west-2"},
        },
        "keys": {"kind": "kms", "kms_key_id": "arn:aws:kms:us-east-1:1:key/mrk-1", "region": "us-east-1"},
        "traffic": {
            "hosted_zone_id": "Z1",
            "record_name": "orders.example.com",
            "front_door_url": "https://o/",
        },
    }


def write_yaml(tmp_path: Path, data: Any, name: str = "target.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


# -- the model -------------------------------------------------------------------------------------------


def test_valid_description_loads_with_defaults(tmp_path: Path) -> None:
    target = load_target(write_yaml(tmp_path, valid_target()))
    assert target.name == "staging"
    assert target.primary.hosts[0].ssh_port == 2222
    assert target.standby.database.kind == "self-managed"
    assert target.backup.local.prefix == "backups/"
    assert target.objectives.rto_seconds == 60
    assert [h.name for h in target.hosts()] == ["primary-app", "standby-app"]
    assert target.site("standby").region == "us-west-2"


def test_target_is_frozen() -> None:
    target = Target.model_validate(valid_target())
    with pytest.raises(ValidationError):
        target.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        (
            lambda d: d["primary"]["hosts"][0].update(service_port=70000),
            "primary.hosts.0.service_port",
            "65535",
        ),
        (lambda d: d["standby"]["hosts"][0].update(ssh_port="ssh"), "standby.hosts.0.ssh_port", "integer"),
        (lambda d: d.update(kind="cloud"), "kind", "'lab' or 'aws'"),
        (lambda d: d["primary"].update(hosts=[]), "primary", "a site needs hosts, or discover"),
        (lambda d: d.update(colour="blue"), "colour", "Extra inputs are not permitted"),
        (lambda d: d["primary"]["hosts"][0].update(name="Primary App"), "primary.hosts.0.name", "pattern"),
        (lambda d: d.pop("traffic"), "traffic", "Field required"),
    ],
)
def test_wrong_field_is_reported_with_its_path_and_what_is_expected(
    tmp_path: Path, change: Any, field: str, expected: str
) -> None:
    data = valid_target()
    change(data)
    path = write_yaml(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_target(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: field {field}: ")
    assert expected in message
    assert "\n" not in message
    assert caught.value.exit_code == ExitCode.USAGE


def test_both_backup_copies_in_one_bucket_is_refused(tmp_path: Path) -> None:
    data = valid_target()
    data["backup"]["remote"] = dict(data["backup"]["local"])
    with pytest.raises(ConfigError, match=r"field backup: .*different buckets"):
        load_target(write_yaml(tmp_path, data))


def test_kms_key_source_needs_a_key_and_region(tmp_path: Path) -> None:
    data = valid_target()
    data["keys"] = {"kind": "kms", "region": "us-east-1"}
    with pytest.raises(ConfigError, match=r"field keys: .*kms_key_id and region"):
        load_target(write_yaml(tmp_path, data))


def test_swapped_site_names_are_refused(tmp_path: Path) -> None:
    data = valid_target()
    data["primary"]["name"], data["standby"]["name"] = "standby", "primary"
    with pytest.raises(ConfigError, match="named primary and standby"):
        load_target(write_yaml(tmp_path, data))


def test_several_errors_are_counted_in_one_line(tmp_path: Path) -> None:
    data = valid_target()
    data["primary"]["hosts"][0]["service_port"] = 0
    data["standby"]["hosts"][0]["service_port"] = 0
    with pytest.raises(
        ConfigError, match=r"field primary.hosts.0.service_port: .* \(and [1-9][0-9]* more\)$"
    ):
        load_target(write_yaml(tmp_path, data))


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "target.yaml"
    path.write_text("name: staging\nkind: aws\nprimary: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+ is not valid YAML"):
        load_target(path)


def test_a_list_at_the_top_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_target(write_yaml(tmp_path, [valid_target()]))


def test_unknown_target_name_is_not_found() -> None:
    with pytest.raises(
        TargetNotFound, match=r"'no-such-target-x1': no description at .*inventories/no-such-target-x1"
    ):
        resolve_target_path("no-such-target-x1")
    with pytest.raises(TargetNotFound):
        load_target("no-such-target-x1")


def test_missing_path_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(TargetNotFound, match=r"give a target name or a target\.yaml path"):
        resolve_target_path(str(tmp_path / "absent.yaml"))


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    target = Target.model_validate(valid_target())
    out = tmp_path / "deep" / "target.yaml"
    write_target(target, out)
    assert load_target(out) == target
    assert not list(out.parent.glob("*.tmp"))


# -- the Pulumi outputs converter ------------------------------------------------------------------------


def stack_outputs(site: str) -> dict[str, Any]:
    region = "us-east-1" if site == "primary" else "us-west-2"
    return {
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
        "loadBalancerDnsName": f"{site}-alb.{region}.elb.amazonaws.com",
        "loadBalancerArn": f"arn:aws:elasticloadbalancing:{region}:123456789012:loadbalancer/app/{site}/0a1b",
        "loadBalancerZoneId": "Z35SXDOTRQ7X7K" if site == "primary" else "Z1H1FL5HABSF5",
        "lockTableName": "order-recovery-locks",
        "lockTableRegion": region,
        "objectives": {
            "rtoSeconds": 900,
            "rpoSeconds": 60,
            "realtimeBackupMaxAgeSeconds": 300,
            "dailyBackupMaxAgeHours": 26,
            "replicationLagMaxSeconds": 30,
            "latencyP95Ms": 500,
            "errorRateMax": 0.01,
        },
    }


def operator(**changes: Any) -> OperatorInputs:
    values: dict[str, Any] = {
        "primary_hosts": ("10.10.10.5", "10.10.11.6"),
        "standby_hosts": ("10.20.10.7",),
        "ssh_user": "ec2-user",
        "ssh_key": Path("/home/ops/.ssh/orders"),
        "state_dir": Path("/var/lib/order-recovery/production"),
        "inventory": Path("/etc/order-recovery/aws_ec2.yml"),
        "db_passfile": Path("/home/ops/.pgpass"),
    }
    values.update(changes)
    return OperatorInputs(**values)


def test_outputs_become_a_complete_aws_target() -> None:
    target = target_from_pulumi_outputs(stack_outputs("primary"), stack_outputs("standby"), operator())
    assert (target.name, target.kind) == ("production", "aws")
    assert target.aws.endpoint_url is None
    assert [h.name for h in target.primary.hosts] == ["primary-app-1", "primary-app-2"]
    assert [h.address for h in target.standby.hosts] == ["10.20.10.7"]
    assert {h.ssh_user for h in target.hosts()} == {"ec2-user"}
    assert target.primary.hosts[0].service_port == 8080
    assert target.primary.database.kind == "rds"
    assert target.primary.database.rds_instance_id == "order-recovery-primary"
    assert target.standby.database.address == "order-recovery-standby.c1.us-west-2.rds.amazonaws.com"
    assert target.standby.database.passfile == Path("/home/ops/.pgpass")
    assert (target.backup.local.bucket, target.backup.local.region) == (
        "order-recovery-primary-backups-1a2b",
        "us-east-1",
    )
    assert (target.backup.remote.bucket, target.backup.remote.region) == (
        "order-recovery-standby-backups-1a2b",
        "us-west-2",
    )
    assert target.keys.kind == "kms"
    assert target.keys.kms_key_id == "arn:aws:kms:us-east-1:123456789012:key/mrk-0abc"
    assert target.traffic.record_name == "orders.example.com"
    # Each site's load balancer: the alias target its failover record names when traffic moves.
    assert target.standby.load_balancer is not None
    assert target.standby.load_balancer.dns_name == "standby-alb.us-west-2.elb.amazonaws.com"
    assert target.standby.load_balancer.hosted_zone_id == "Z1H1FL5HABSF5"
    assert target.primary.load_balancer is not None
    assert target.primary.load_balancer.arn.endswith(":loadbalancer/app/primary/0a1b")
    assert target.objectives.rto_seconds == 900
    assert target.objectives.replication_lag_max_seconds == 30
    assert target.intake_queue_url is not None and target.intake_queue_url.endswith("/primary-intake")
    assert target.team_topic_arn == "arn:aws:sns:us-east-1:123456789012:primary-team"


@pytest.mark.parametrize("missing", ["dbAddress", "backupBucketName", "objectives", "loadBalancerZoneId"])
def test_a_missing_output_is_named(missing: str) -> None:
    primary = stack_outputs("primary")
    del primary[missing]
    with pytest.raises(ConfigError, match=f"primary stack outputs lack {missing}; export them again"):
        target_from_pulumi_outputs(primary, stack_outputs("standby"), operator())


def test_swapped_files_are_refused() -> None:
    with pytest.raises(ConfigError, match="given as the primary stack's outputs holds site 'standby'"):
        target_from_pulumi_outputs(stack_outputs("standby"), stack_outputs("primary"), operator())


def test_sites_in_one_region_are_refused() -> None:
    standby = stack_outputs("standby")
    standby["region"] = "us-east-1"
    with pytest.raises(ConfigError, match="both stacks are in us-east-1"):
        target_from_pulumi_outputs(stack_outputs("primary"), standby, operator())


def test_stacks_must_share_the_failover_record() -> None:
    standby = stack_outputs("standby")
    standby["recordName"] = "shop.example.com"
    with pytest.raises(ConfigError, match="disagree on recordName"):
        target_from_pulumi_outputs(stack_outputs("primary"), standby, operator())


def test_hidden_secret_outputs_are_refused() -> None:
    primary = stack_outputs("primary")
    primary["dbAddress"] = "[secret]"
    with pytest.raises(ConfigError, match="hide dbAddress as \\[secret\\]"):
        target_from_pulumi_outputs(primary, stack_outputs("standby"), operator())


def test_a_site_without_host_addresses_finds_its_hosts_by_tags() -> None:
    target = target_from_pulumi_outputs(
        stack_outputs("primary"), stack_outputs("standby"), operator(standby_hosts=())
    )
    assert target.standby.hosts == ()
    assert target.standby.discover is not None
    assert target.standby.discover.tags == {
        "project": "order-recovery",
        "site": "standby",
        "role": "order-service",
    }
    assert (target.standby.discover.ssh_user, target.standby.discover.service_port) == ("ec2-user", 8080)
    assert target.primary.discover is None and len(target.primary.hosts) == 2


def test_host_addresses_are_checked() -> None:
    with pytest.raises(UsageError, match=r"'10\.0\.0\.1; rm' is not a host name"):
        target_from_pulumi_outputs(
            stack_outputs("primary"), stack_outputs("standby"), operator(primary_hosts=("10.0.0.1; rm",))
        )


def test_invalid_output_values_name_the_target_field() -> None:
    primary = stack_outputs("primary")
    primary["objectives"] = {**primary["objectives"], "rtoSeconds": -1}
    with pytest.raises(ConfigError, match="invalid target field rto_seconds"):
        target_from_pulumi_outputs(primary, stack_outputs("standby"), operator())
    standby = stack_outputs("standby")
    standby["dbPort"] = "five"
    with pytest.raises(ConfigError, match="wrong type"):
        target_from_pulumi_outputs(stack_outputs("primary"), standby, operator())


def test_every_required_output_is_read() -> None:
    # Each name in the contract matters: dropping any one of them is refused.
    for name in REQUIRED_OUTPUTS:
        primary = stack_outputs("primary")
        del primary[name]
        with pytest.raises(ConfigError, match=name):
            target_from_pulumi_outputs(primary, stack_outputs("standby"), operator())


def test_read_stack_outputs_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist; write it with `pulumi stack output --json"):
        read_stack_outputs(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"site": "primary",\n')
    with pytest.raises(ConfigError, match="is not JSON"):
        read_stack_outputs(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="no mapping of outputs"):
        read_stack_outputs(listed)


# -- the command line ------------------------------------------------------------------------------------


def test_cli_check_unknown_target_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["target", "check", "no-such-target-x1"])
    captured = capsys.readouterr()
    assert code == ExitCode.USAGE == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error[target.not_found]: target 'no-such-target-x1': no description at ")
    assert captured.out == ""


def test_cli_check_wrong_field_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = valid_target()
    data["standby"]["database"]["port"] = 99999
    path = write_yaml(tmp_path, data)
    code = main(["target", "check", str(path), "--output", "json"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip() == (
        f"error[config.invalid]: {path}: field standby.database.port: "
        "Input should be less than or equal to 65535"
    )
    doc = json.loads(captured.out)
    assert doc["status"] == "error"
    assert doc["result"]["code"] == "config.invalid"


def test_cli_check_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_yaml(tmp_path, valid_target())
    assert main(["target", "check", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"target staging (aws) is valid: {path}" in text
    assert "primary: us-east-1, 1 host(s), database self-managed 10.0.0.11:5432/orders" in text
    assert "orderlab@10.1.0.12:2222" in text
    assert "remote s3://backups-standby/backups/ (us-west-2)" in text

    assert main(["target", "check", str(path), "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "order-recovery/v1"
    assert doc["command"] == "target check"
    assert doc["result"]["sites"]["standby"]["region"] == "us-west-2"
    assert doc["result"]["objectives"] == {"rto_seconds": 60.0, "rpo_seconds": 5.0}


def _from_pulumi_args(tmp_path: Path, primary: dict[str, Any], standby: dict[str, Any]) -> list[str]:
    (tmp_path / "primary.json").write_text(json.dumps(primary))
    (tmp_path / "standby.json").write_text(json.dumps(standby))
    return [
        "target", "from-pulumi",
        "--primary", str(tmp_path / "primary.json"),
        "--standby", str(tmp_path / "standby.json"),
        "--out", str(tmp_path / "production" / "target.yaml"),
        "--ssh-user", "ec2-user",
        "--ssh-key", "/home/ops/.ssh/orders",
        "--primary-host", "10.10.10.5",
        "--primary-host", "10.10.11.6",
        "--standby-host", "10.20.10.7",
    ]  # fmt: skip


def test_cli_from_pulumi_writes_a_target_that_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _from_pulumi_args(tmp_path, stack_outputs("primary"), stack_outputs("standby"))
    assert main(args) == 0
    out = tmp_path / "production" / "target.yaml"
    assert "wrote target production to" in capsys.readouterr().out
    target = load_target(out)
    assert target.kind == "aws"
    assert target.state_dir == Path("/var/lib/order-recovery/production")
    assert target.inventory == out.parent / "aws_ec2.yml"
    assert [h.address for h in target.primary.hosts] == ["10.10.10.5", "10.10.11.6"]
    assert target.primary.hosts[0].ssh_key == Path("/home/ops/.ssh/orders")
    assert main(["target", "check", str(out)]) == 0


def test_cli_from_pulumi_bad_outputs_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    primary = stack_outputs("primary")
    del primary["kmsKeyArn"]
    code = main(_from_pulumi_args(tmp_path, primary, stack_outputs("standby")))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error[config.invalid]: primary stack outputs lack kmsKeyArn")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "production").exists()


def test_cli_from_pulumi_missing_option_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _from_pulumi_args(tmp_path, stack_outputs("primary"), stack_outputs("standby"))
    without_ssh_user = [a for i, a in enumerate(args) if "--ssh-user" not in args[i - 1 : i + 1]]
    assert main(without_ssh_user) == 2
    assert "--ssh-user" in capsys.readouterr().err
    assert not (tmp_path / "production").exists()


def test_cli_from_pulumi_without_host_addresses_writes_the_ec2_inventory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _from_pulumi_args(tmp_path, stack_outputs("primary"), stack_outputs("standby"))
    without_hosts = [
        a for i, a in enumerate(args) if not {"--standby-host", "--primary-host"} & set(args[i - 1 : i + 1])
    ]
    assert main(without_hosts) == 0
    folder = tmp_path / "production"
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.yml")) == [
        "aws_ec2.yml",
        "group_vars/all.yml",
        "group_vars/primary.yml",
        "group_vars/standby.yml",
    ]
    capsys.readouterr()
    assert main(["target", "check", str(folder / "target.yaml")]) == 0
    assert "hosts found at run time" in capsys.readouterr().out
    bad = [
        *without_hosts,
        "--inventory",
        str(tmp_path / "hosts.yml"),
        "--out",
        str(tmp_path / "other" / "t.yaml"),
    ]
    assert main(bad) == 2
    assert "must end in aws_ec2.yml" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_cli_from_pulumi_json_output_and_unwritable_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _from_pulumi_args(tmp_path, stack_outputs("primary"), stack_outputs("standby"))
    assert main([*args, "--name", "prod-east", "--output", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["command"], doc["status"]) == ("target from-pulumi", "ok")
    assert doc["result"]["name"] == "prod-east"
    assert doc["result"]["path"] == str(tmp_path / "production" / "target.yaml")
    assert load_target(tmp_path / "production" / "target.yaml").state_dir == Path(
        "/var/lib/order-recovery/prod-east"
    )

    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    out_index = args.index("--out") + 1
    args[out_index] = str(blocker / "target.yaml")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error[usage]: cannot write {blocker / 'target.yaml'} (")
    assert err.endswith("choose a writable --out path")


def test_outputs_fixture_covers_the_contract() -> None:
    # The unit fixture must hold every name the converter needs, or the tests above prove less than they say.
    assert set(REQUIRED_OUTPUTS) <= set(copy.deepcopy(stack_outputs("primary")))
