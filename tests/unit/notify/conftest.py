"""A target for the notification tests: only its state dir and topics matter here."""

from __future__ import annotations

from pathlib import Path

import pytest

from recovery.targets import Target


def site(name: str, address: str, root: Path) -> dict[str, object]:
    return {
        "name": name,
        "region": "eu-west-1",
        "hosts": [
            {
                "name": f"{name}-app",
                "address": address,
                "ssh_user": "orderlab",
                "base_dir": str(root),
                "service_port": 18080,
            }
        ],
        "database": {"address": address, "port": 15432},
    }


@pytest.fixture
def make_target(tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(**fields: object) -> Target:
        doc: dict[str, object] = {
            "name": "shop",
            "kind": "aws",
            "state_dir": str(tmp_path / "state"),
            "inventory": str(tmp_path / "hosts.yml"),
            "primary": site("primary", "127.0.0.11", tmp_path),
            "standby": site("standby", "127.0.0.12", tmp_path),
            "backup": {
                "local": {"bucket": "b-local", "region": "eu-west-1"},
                "remote": {"bucket": "b-remote", "region": "eu-central-1"},
            },
            "keys": {"kind": "keyring", "keyring": str(tmp_path / "keyring")},
            "traffic": {
                "hosted_zone_id": "Z1",
                "record_name": "shop.test",
                "front_door_url": "http://127.0.0.1:1",
            },
            **fields,
        }
        return Target.model_validate(doc)

    return make
