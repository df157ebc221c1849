"""Write a small lab-kind target.yaml for CLI tests: the sites come from the test, the rest is fixed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from recovery.targets.model import Target


def one_host_site(
    tmp_path: Path, name: str, *, ssh_port: int, service_port: int, db_port: int
) -> dict[str, Any]:
    """A site of one app host and its database, both on 127.0.0.1 (primary in us-east-1, else us-west-2)."""
    return {
        "name": name,
        "region": "us-east-1" if name == "primary" else "us-west-2",
        "hosts": [
            {
                "name": f"{name}-app",
                "address": "127.0.0.1",
                "ssh_port": ssh_port,
                "ssh_user": "orderlab",
                "base_dir": str(tmp_path / name),
                "service_port": service_port,
            }
        ],
        "database": {"address": "127.0.0.1", "port": db_port},
    }


def write_target_file(tmp_path: Path, name: str, primary: dict[str, Any], standby: dict[str, Any]) -> Path:
    data = {
        "name": name,
        "kind": "lab",
        "state_dir": str(tmp_path / "state"),
        "inventory": str(tmp_path / "hosts.yml"),
        "primary": primary,
        "standby": standby,
        "backup": {
            "local": {"bucket": "a", "region": "us-east-1"},
            "remote": {"bucket": "b", "region": "us-west-2"},
        },
        "keys": {"kind": "keyring", "keyring": str(tmp_path / "keyring")},
        "traffic": {
            "hosted_zone_id": "Z1",
            "record_name": "orders.lab",
            "front_door_url": "http://127.0.0.1/",
        },
    }
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def unit_target_doc(root: Path, name: str = "unit") -> dict[str, Any]:
    """A lab-kind target document under `root` (nothing listens at its addresses): for steps and plans."""

    def site(site_name: str, address: str) -> dict[str, Any]:
        return {
            "name": site_name,
            "region": "eu-west-1" if site_name == "primary" else "eu-central-1",
            "hosts": [
                {
                    "name": f"{site_name}-app",
                    "address": address,
                    "ssh_user": "orderlab",
                    "base_dir": str(root / site_name),
                    "service_port": 18080,
                }
            ],
            "database": {"address": address, "port": 15432},
        }

    return {
        "name": name,
        "kind": "lab",
        "state_dir": str(root / "state"),
        "inventory": str(root / "inventory" / "hosts.yml"),
        "primary": site("primary", "127.0.0.11"),
        "standby": site("standby", "127.0.0.12"),
        "backup": {
            "local": {"bucket": "b-local", "region": "eu-west-1"},
            "remote": {"bucket": "b-remote", "region": "eu-central-1"},
        },
        "keys": {"kind": "keyring", "keyring": str(root / "keyring")},
        "traffic": {
            "hosted_zone_id": "Z1",
            "record_name": "orders.example.test",
            "front_door_url": "http://127.0.0.1:18000",
        },
    }


def unit_target(root: Path, name: str = "unit") -> Target:
    return Target.model_validate(unit_target_doc(root, name))


def write_unit_target(root: Path, name: str = "unit") -> Path:
    """The same target written as `root/target.yaml` (for CLI tests); returns its path."""
    path = root / "target.yaml"
    path.write_text(yaml.safe_dump(unit_target_doc(root, name)))
    return path


def rds_target(
    root: Path,
    *,
    regions: tuple[str, str] = ("eu-west-1", "us-west-2"),
    database: tuple[str, int] = ("127.0.0.1", 15432),
    master_secret_arn: str | None = None,
    instance_ids: tuple[str, str] = ("order-recovery-primary", "order-recovery-standby"),
    endpoint_url: str | None = None,
) -> Target:
    """An AWS target as `recovery target from-pulumi` writes it without host addresses: both sites find
    their hosts by tags, both databases are on RDS (credentials from `master_secret_arn` at run time)."""
    doc = unit_target_doc(root, "shop")
    doc["kind"] = "aws"
    doc["inventory"] = str(root / "inventory" / "aws_ec2.yml")
    if endpoint_url is not None:
        doc["aws"] = {"endpoint_url": endpoint_url}
    for site_name, region, identifier in zip(("primary", "standby"), regions, instance_ids, strict=True):
        site = doc[site_name]
        site["region"] = region
        site["hosts"] = []
        site["discover"] = {
            "tags": {"project": "order-recovery", "site": site_name, "role": "order-service"},
            "ssh_user": "ec2-user",
            "ssh_key": str(root / "id_ed25519"),
            "base_dir": "/srv/order-service",
            "service_port": 8080,
        }
        site["database"] = {
            "kind": "rds",
            "address": database[0],
            "port": database[1],
            "user": "admin",
            "rds_instance_id": identifier,
            "master_secret_arn": master_secret_arn,
        }
    doc["backup"] = {
        "local": {"bucket": "b-local", "region": regions[0]},
        "remote": {"bucket": "b-remote", "region": regions[1]},
    }
    return Target.model_validate(doc)
