"""`recovery target from-pulumi` on the stacks' mocked outputs writes a target that finds its hosts by the
tags the auto scaling groups give them, and `recovery target check` accepts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from stack_harness import StackRun

from recovery.cli.main import main

ASG = "aws:autoscaling/group:Group"


def _propagated_tags(run: StackRun) -> dict[str, str]:
    group = run.one(ASG)
    return {tag["key"]: tag["value"] for tag in group.inputs["tags"] if tag.get("propagateAtLaunch")}


def _from_pulumi(
    primary: StackRun, standby: StackRun, folder: Path, capsys: pytest.CaptureFixture[str]
) -> Path:
    for run in (primary, standby):
        # As `pulumi stack output --json > file` hands them over.
        (folder / f"{run.stack}.json").write_text(json.dumps(run.outputs))
    out = folder / "production" / "target.yaml"
    code = main(
        [
            "target", "from-pulumi",
            "--primary", str(folder / "primary.json"),
            "--standby", str(folder / "standby.json"),
            "--out", str(out),
            "--ssh-user", "ec2-user",
            "--ssh-key", "/home/ops/.ssh/orders-controller",
            "--state-dir", str(folder / "state"),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    return out


def test_a_target_written_from_the_mocked_outputs_passes_the_check(
    primary: StackRun, standby: StackRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _from_pulumi(primary, standby, tmp_path, capsys)
    capsys.readouterr()
    assert main(["target", "check", str(out), "--output", "json"]) == 0
    checked = json.loads(capsys.readouterr().out)["result"]
    assert checked["sites"]["primary"]["hosts"] == [
        "found at run time: running instances tagged project=order-recovery, site=primary, "
        "role=order-service (ec2-user@)"
    ]
    written = yaml.safe_load(out.read_text())
    # The master secrets the runbooks read at run time: the primary's own, and the primary's for its replica.
    assert written["primary"]["database"]["master_secret_arn"] == primary.outputs["dbMasterSecretArn"]
    assert written["standby"]["database"]["master_secret_arn"] == primary.outputs["dbMasterSecretArn"]
    assert written["primary"]["database"]["passfile"] is None


def test_the_inventory_filters_on_tags_the_auto_scaling_groups_give_their_hosts(
    primary: StackRun, standby: StackRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _from_pulumi(primary, standby, tmp_path, capsys)
    inventory = yaml.safe_load((out.parent / "aws_ec2.yml").read_text())
    assert inventory["plugin"] == "amazon.aws.aws_ec2"
    assert inventory["regions"] == ["us-east-1", "us-west-2"]
    for run in (primary, standby):
        tags = _propagated_tags(run)
        for name, wanted in inventory["filters"].items():
            if name.startswith("tag:"):
                key = name.removeprefix("tag:")
                assert tags[key] == wanted or tags[key] in wanted, (run.stack, key)
        site_vars = yaml.safe_load((out.parent / "group_vars" / f"{run.stack}.yml").read_text())
        assert site_vars == {
            "order_site": run.stack,
            "order_db_host": run.outputs["dbAddress"],
            "order_db_port": run.outputs["dbPort"],
        }
    everyone = yaml.safe_load((out.parent / "group_vars" / "all.yml").read_text())
    assert everyone["order_service_port"] == primary.outputs["servicePort"]
    assert everyone["ansible_ssh_private_key_file"] == "/home/ops/.ssh/orders-controller"
    assert everyone["order_service_supervisor"] == "systemd"


def test_an_inventory_that_misses_a_site_fails_the_check_with_one_line(
    primary: StackRun, standby: StackRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _from_pulumi(primary, standby, tmp_path, capsys)
    inventory_path = out.parent / "aws_ec2.yml"
    inventory = yaml.safe_load(inventory_path.read_text())
    inventory["regions"] = ["us-east-1"]
    inventory_path.write_text(yaml.safe_dump(inventory))
    capsys.readouterr()
    assert main(["target", "check", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "does not search us-west-2, the standby site's region" in err


def test_each_sites_fence_admits_the_controller_cidrs_its_stack_exports(
    primary: StackRun, standby: StackRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _from_pulumi(primary, standby, tmp_path, capsys)
    written = yaml.safe_load(out.read_text())
    for run in (primary, standby):
        # Each stack exports its own network.adminCidrs (Pulumi.<stack>.yaml); its site's fence admits them.
        assert run.outputs["adminCidrs"] == ["10.255.0.0/24"]
        assert written[run.stack]["database"]["fence_admit"] == run.outputs["adminCidrs"]
