"""The deploy playbook, run by ansible-runner with a local connection against the real service and database.

Two inventory hosts (primary and standby sites) live on this machine with their own base dirs and ports;
both use the test database, so the standby is not read-only here, which makes "only the primary migrates"
visible in the migration count rather than in a refused write.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import urllib.request
from pathlib import Path

import pytest
import yaml

from recovery.drivers.ansible import run_playbook
from recovery.release.artifacts import build_release_artifact

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "deploy.yml"


def _health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())


@pytest.fixture
def lab_like(postgres, tmp_path, free_ports):
    db = postgres.create_database("deploy")
    primary_port, standby_port = free_ports(2)
    ports = {"primary": primary_port, "standby": standby_port}
    base = {site: tmp_path / site / "app" for site in ports}
    hosts = {
        f"{site}-app": {
            "ansible_connection": "local",
            "ansible_python_interpreter": "/usr/bin/python3",
            "order_site": site,
            "order_service_base_dir": str(base[site]),
            "order_service_listen": "127.0.0.1",
            "order_service_port": port,
            "order_db_host": "127.0.0.1",
            "order_db_port": postgres.port,
            "order_db_name": db,
            "order_db_user": "orders",
            "order_db_passfile": str(postgres.passfile),
        }
        for site, port in ports.items()
    }
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "children": {
                        "app": {
                            "children": {
                                "primary": {"hosts": {"primary-app": hosts["primary-app"]}},
                                "standby": {"hosts": {"standby-app": hosts["standby-app"]}},
                            }
                        }
                    }
                }
            }
        )
    )
    group_vars = yaml.safe_load((REPO / "inventories" / "lab" / "group_vars" / "all.yml").read_text())
    assert group_vars["order_service_supervisor"] == "pidfile"

    def deploy(version: str, *, check: bool = False, **extra):
        artifact = build_release_artifact(version, tmp_path / "artifacts")
        result = run_playbook(
            inventory,
            str(PLAYBOOK),
            check=check,
            extravars={"order_service_release": version, "order_service_artifact": str(artifact), **extra},
            private_data_dir=tmp_path / "runs" / f"{version}-{len(list(tmp_path.glob('runs/*')))}",
        )
        print(f"deploy {version}{' --check' if check else ''}: {result.duration:.1f} s")
        return result

    yield {"deploy": deploy, "db": db, "ports": ports, "base": base}
    for site_base in base.values():
        pidfile = site_base / "shared" / "run" / "orderservice.pid"
        if pidfile.is_file():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)


def _pid(base: Path) -> int:
    return int((base / "shared" / "run" / "orderservice.pid").read_text().split()[0])


def test_deploy_upgrade_check_mode_and_failure(lab_like, postgres):
    deploy, ports, base, db = lab_like["deploy"], lab_like["ports"], lab_like["base"], lab_like["db"]

    first = deploy("v1")
    assert first.ok, first.failed_task
    for site, port in ports.items():
        health = _health(port)
        assert health["status"] == "ok" and health["version"] == "v1" and health["site"] == site
        assert os.readlink(base[site] / "current") == "releases/v1"
    assert postgres.query(db, "SELECT max(version) FROM schema_migrations") == [(1,)]
    v1_pid = _pid(base["primary"])

    again = deploy("v1")
    assert again.ok and all(stats.changed == 0 for stats in again.hosts.values()), again.hosts
    assert _pid(base["primary"]) == v1_pid

    dry = deploy("v2", check=True)
    assert dry.ok, dry.failed_task
    assert not (base["primary"] / "releases" / "v2").exists()
    assert os.readlink(base["primary"] / "current") == "releases/v1"
    assert postgres.query(db, "SELECT max(version) FROM schema_migrations") == [(1,)]

    upgrade = deploy("v2")
    assert upgrade.ok, upgrade.failed_task
    assert postgres.query(db, "SELECT count(*), max(version) FROM schema_migrations") == [(4, 4)]
    for site, port in ports.items():
        assert _health(port)["version"] == "v2"
        assert os.readlink(base[site] / "current") == "releases/v2"
        assert not (base[site] / "current.new").exists()
    assert _pid(base["primary"]) != v1_pid
    config = json.loads((base["standby"] / "current" / "config.json").read_text())
    assert config["site"] == "standby" and config["db"]["passfile"] == str(postgres.passfile)
    assert postgres.password not in (base["standby"] / "current" / "config.json").read_text()

    # A definite failure ends the wait at once, however long the deploy was willing to wait for "not yet":
    # the message names the verdict, never "within 120 s".
    unhealthy = deploy("v2-unhealthy", order_service_health_timeout=120)
    assert not unhealthy.ok
    assert unhealthy.failed_task is not None
    assert "a problem waiting will not clear" in unhealthy.failed_task.message
    assert "UndefinedTable" in unhealthy.failed_task.message
    assert "within 120 s" not in unhealthy.failed_task.message

    crash = deploy("v2-crash", order_service_health_timeout=120)
    assert not crash.ok
    assert crash.failed_task is not None and "its process exited" in crash.failed_task.message
    out = (base["primary"] / "shared" / "log" / "orderservice.out").read_text()
    assert "No module named 'orderservice.money'" in out


def test_missing_artifact_is_refused_before_any_change(lab_like, tmp_path):
    result = run_playbook(
        Path(tmp_path / "hosts.yml"),
        str(PLAYBOOK),
        extravars={"order_service_release": "v1", "order_service_artifact": str(tmp_path / "nope.tar.gz")},
        private_data_dir=tmp_path / "runs" / "missing",
    )
    assert not result.ok
    assert result.failed_task is not None and "does not exist" in result.failed_task.message
    assert not (lab_like["base"]["primary"] / "releases").exists()
