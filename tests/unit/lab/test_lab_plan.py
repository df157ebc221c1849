"""Port planning and the lab.json state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from recovery.errors import ConfigError, UsageError
from recovery.lab.plan import plan_lab
from recovery.lab.state import LabState, ProcessRecord, read_state, write_state


def test_ports_follow_the_architecture_table(tmp_path: Path) -> None:
    plan = plan_lab(tmp_path, 25000)
    assert (plan.front_door_port, plan.moto_port) == (25000, 25001)
    assert (plan.primary.address, plan.standby.address) == ("127.0.0.11", "127.0.0.12")
    for site in plan.sites:
        assert (site.ssh_port, site.service_port, site.pg_port) == (25022, 25080, 25432)
    assert plan.primary.app_dir == tmp_path.resolve() / "hosts" / "primary" / "app"
    assert plan.standby.pg_data == tmp_path.resolve() / "pg" / "standby" / "data"


def test_every_listener_is_distinct(tmp_path: Path) -> None:
    listeners = plan_lab(tmp_path, 25000).listeners()
    assert len(listeners) == 9  # with the watch's metrics endpoint
    assert len({(address, port) for _, address, port in listeners}) == 9


@pytest.mark.parametrize("base", [80, 65300, 26800, 27500])
def test_bad_or_reserved_base_ports_are_refused(tmp_path: Path, base: int) -> None:
    with pytest.raises(UsageError, match="--base-port"):
        plan_lab(tmp_path, base)


def test_the_default_base_port_is_allowed(tmp_path: Path) -> None:
    assert plan_lab(tmp_path, 27000).moto_port == 27001


def test_state_round_trips_and_replaces_a_process_by_name(tmp_path: Path) -> None:
    state = LabState(lab_dir=tmp_path, base_port=25000, run_as="orderlab")
    state = state.with_process(ProcessRecord(name="moto", kind="moto", pid=10, start_ticks=5))
    state = state.with_process(ProcessRecord(name="moto", kind="moto", pid=11, start_ticks=6))
    write_state(state, tmp_path / "lab.json")
    again = read_state(tmp_path / "lab.json")
    assert again == state
    assert again is not None and [p.pid for p in again.processes] == [11]
    assert again.without_process("moto").processes == ()


def test_missing_state_is_none_and_garbage_is_a_config_error(tmp_path: Path) -> None:
    assert read_state(tmp_path / "lab.json") is None
    (tmp_path / "lab.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a valid lab state file"):
        read_state(tmp_path / "lab.json")
