"""The lab's moto server holds the lock table, and two controllers of a lab target exclude each other.

Only the lab's moto server is started (the lab's own start and provisioning code), not the whole lab.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from worker_ports import base_port

from recovery.drivers.aws import AwsDriver
from recovery.engine.lock import LAB_LOCK_TABLE, LockHolder, lock_table_of, target_lock
from recovery.errors import LockHeld
from recovery.lab import aws as lab_aws
from recovery.lab.plan import PRIMARY_REGION, LabPlan, plan_lab
from recovery.lab.processes import stop_pid
from recovery.lab.state import ProcessRecord
from recovery.targets import load_target
from recovery.targets.model import AwsEndpoint, Target
from tests.target_files import one_host_site, write_target_file

BASE_PORT = base_port("RECOVERY_TEST_BASE_PORT", 25000)


@pytest.fixture(scope="module")
def moto_plan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabPlan]:
    plan = plan_lab(tmp_path_factory.mktemp("lab"), BASE_PORT)
    plan.moto_dir.mkdir(parents=True, exist_ok=True)
    started: list[ProcessRecord] = []
    try:
        lab_aws.start_moto(plan, started.append)
        lab_aws.provision(plan)
        yield plan
    finally:
        for record in started:
            stop_pid(record.pid, record.start_ticks)


def _lab_target(tmp_path: Path, plan: LabPlan, controller: str) -> Target:
    folder = tmp_path / controller
    folder.mkdir()
    primary = one_host_site(folder, "primary", ssh_port=2201, service_port=8001, db_port=5433)
    standby = one_host_site(folder, "standby", ssh_port=2202, service_port=8002, db_port=5434)
    primary["region"] = PRIMARY_REGION  # as the lab writes its own target
    target = load_target(write_target_file(folder, "lab", primary, standby))
    return target.model_copy(update={"aws": AwsEndpoint(endpoint_url=plan.moto_url)})


def test_two_controllers_of_the_lab_see_one_lock(moto_plan: LabPlan, tmp_path: Path) -> None:
    # Two controllers: separate state dirs (their flocks never meet), one moto server.
    first, second = _lab_target(tmp_path, moto_plan, "ci-1"), _lab_target(tmp_path, moto_plan, "ci-2")
    assert lock_table_of(first) == (LAB_LOCK_TABLE, first.primary.region)
    holder = LockHolder("20261206T100000Z-restore-0001", "restore", 1, "ci", "ci-1", "2026-12-06T10:00:00Z")
    other = LockHolder("20261206T100001Z-restore-0002", "restore", 2, "ci", "ci-2", "2026-12-06T10:00:01Z")
    refused = pytest.raises(LockHeld, match="locked by run 20261206T100000Z-restore-0001")
    with target_lock(first, holder, AwsDriver(first.aws)), refused:
        target_lock(second, other, AwsDriver(second.aws)).__enter__()
    with target_lock(second, other, AwsDriver(second.aws)) as taken:
        assert taken.shared is not None and taken.shared.token == 2
