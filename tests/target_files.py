"""Write a small lab-kind target.yaml for CLI tests: the sites come from the test, the rest is fixed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


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
