"""The aws_ec2 inventory a discovering target gets: its documents, its checks, and the real plugin
(`ansible-inventory`, the amazon.aws collection the `ansible` package bundles) reading it against moto."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer
from target_files import rds_target

from recovery.targets.inventory import collection_installed, ec2_inventory, inventory_problems

REGIONS = ("eu-west-1", "us-west-2")


def test_the_documents_filter_on_the_sites_tags_and_set_what_the_roles_need(tmp_path: Path) -> None:
    files = ec2_inventory(rds_target(tmp_path)).documents
    plugin = files["aws_ec2.yml"]
    assert plugin["plugin"] == "amazon.aws.aws_ec2"
    assert plugin["regions"] == ["eu-west-1", "us-west-2"]
    assert plugin["filters"] == {
        "tag:project": "order-recovery",
        "tag:role": "order-service",
        "tag:site": ["primary", "standby"],
        "instance-state-name": "running",
    }
    assert plugin["groups"] == {
        "app": "True",
        "primary": "tags.site == 'primary'",
        "standby": "tags.site == 'standby'",
    }
    assert files["group_vars/primary.yml"] == {
        "order_site": "primary",
        "order_db_host": "127.0.0.1",
        "order_db_port": 15432,
    }
    everyone = files["group_vars/all.yml"]
    assert (everyone["ansible_user"], everyone["order_service_port"]) == ("ec2-user", 8080)
    assert everyone["order_db_passfile"] == "/etc/orderservice/pgpass"
    assert inventory_problems(rds_target(tmp_path), plugin) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.update(plugin="aws_ec2"), "does not configure the amazon.aws.aws_ec2 plugin"),
        (lambda d: d["filters"].pop("tag:role"), "does not filter on tag role=order-service (primary hosts)"),
        (lambda d: d["filters"].update({"tag:site": ["primary"]}), "tag site=standby (standby hosts)"),
        (lambda d: d["groups"].pop("standby"), "puts no host in group standby"),
        (lambda d: d["groups"].pop("app"), "has no group app"),
    ],
)
def test_each_mismatch_is_named(tmp_path: Path, change: Callable[[dict], object], problem: str) -> None:
    target = rds_target(tmp_path)
    document = ec2_inventory(target).documents["aws_ec2.yml"]
    change(document)
    assert any(problem in found for found in inventory_problems(target, document))


def test_the_collection_is_installed() -> None:
    assert collection_installed()


@pytest.fixture
def moto_url(free_port: Callable[[], int]) -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST"))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _launch(url: str, region: str, tags: dict[str, str]) -> dict[str, str]:
    ec2 = boto3.client("ec2", region, endpoint_url=url, aws_access_key_id="lab", aws_secret_access_key="lab")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    tag_list = [{"Key": key, "Value": value} for key, value in tags.items()]
    made = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}],
    )["Instances"][0]
    return {"id": made["InstanceId"], "ip": made["PrivateIpAddress"]}


def test_ansible_finds_the_hosts_through_the_written_inventory(tmp_path: Path, moto_url: str) -> None:
    # The target's AWS endpoint (moto here) reaches the plugin through the inventory file itself.
    target = rds_target(tmp_path, endpoint_url=moto_url)
    ec2_inventory(target).write(target.inventory.parent, target.inventory.name)
    base = {"project": "order-recovery", "role": "order-service"}
    primary = _launch(moto_url, REGIONS[0], {**base, "site": "primary"})
    standby = _launch(moto_url, REGIONS[1], {**base, "site": "standby"})
    _launch(moto_url, REGIONS[0], {**base, "site": "primary", "role": "bastion"})  # not an order host
    binary = shutil.which("ansible-inventory", path=str(Path(sys.executable).parent))
    assert binary is not None
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "lab",
        "AWS_SECRET_ACCESS_KEY": "lab",
    }
    done = subprocess.run(
        [binary, "-i", str(target.inventory), "--list"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout)
    primary_name, standby_name = f"primary-{primary['id']}", f"standby-{standby['id']}"
    assert found["primary"]["hosts"] == [primary_name]
    assert found["standby"]["hosts"] == [standby_name]
    assert sorted(found["app"]["hosts"]) == sorted([primary_name, standby_name])
    hostvars = found["_meta"]["hostvars"]
    assert _plain(hostvars[primary_name]["ansible_host"]) == primary["ip"]
    assert _plain(hostvars[standby_name]["ansible_host"]) == standby["ip"]
    # The group variables written beside the plugin's file reach each host.
    assert _plain(hostvars[standby_name]["order_site"]) == "standby"
    assert _plain(hostvars[primary_name]["order_db_port"]) == 15432
    assert _plain(hostvars[primary_name]["ansible_user"]) == "ec2-user"


def _plain(value: object) -> object:
    """A value as Ansible prints it, without its marking of values that came from outside."""
    return value["__ansible_unsafe"] if isinstance(value, dict) and "__ansible_unsafe" in value else value
