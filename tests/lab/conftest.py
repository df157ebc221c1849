"""The lab for end-to-end tests: one real lab per test module, always torn down.

Several lab test modules, or several people, may run on one machine: the base port comes from
RECOVERY_TEST_BASE_PORT (default 25000) so parallel runs can keep apart, and pytest-xdist worker gwN adds
N * 3000 to it (tests/worker_ports.py) so the workers of one run do too. The teardown runs `lab down`
and then checks that no process the lab recorded is still alive, also when a test failed.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from worker_ports import base_port

from recovery.cli.main import main
from recovery.drivers import remote
from recovery.errors import ExitCode
from recovery.lab import service
from recovery.lab.plan import LabPlan, plan_lab
from recovery.lab.processes import is_alive
from recovery.lab.state import ProcessRecord, read_state
from recovery.targets.load import load_target
from recovery.targets.model import Target

BASE_PORT = base_port("RECOVERY_TEST_BASE_PORT", 25000)
# Lab tests build their labs without the watch (its scheduled backups and runs would make them
# nondeterministic); the watch's own tests pass `--watch`, which wins over this.
os.environ.setdefault("RECOVERY_LAB_WATCH", "off")


@dataclass(frozen=True)
class Lab:
    dir: Path
    plan: LabPlan
    target: Target


def recorded_processes(lab_dir: Path, base_port: int) -> list[ProcessRecord]:
    """Every process the lab started: those in lab.json and the order services' pidfiles."""
    state = read_state(lab_dir / "lab.json")
    records = list(state.processes) if state else []
    for site in plan_lab(lab_dir, base_port).sites:
        current = service.service_record(site)
        if current is not None:
            records.append(current)
    return records


def kill_leftovers(records: list[ProcessRecord]) -> list[str]:
    alive = [r for r in records if is_alive(r.pid, r.start_ticks)]
    for r in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(r.pid, signal.SIGKILL)
    return [f"{r.name} (pid {r.pid})" for r in alive]


@contextlib.contextmanager
def running_lab(lab_dir: Path, base_port: int, *extra: str) -> Iterator[Lab]:
    try:
        code = main(["lab", "up", "--lab-dir", str(lab_dir), "--base-port", str(base_port), *extra])
        assert code == ExitCode.OK, "lab up failed"
        yield Lab(lab_dir, plan_lab(lab_dir, base_port), load_target(lab_dir / "target.yaml"))
    finally:
        before = recorded_processes(lab_dir, base_port)
        remote.close_all()
        code = main(["lab", "down", "--lab-dir", str(lab_dir)])
        leftovers = kill_leftovers(before)
        assert code == ExitCode.OK
        assert leftovers == [], f"lab down left processes running: {leftovers}"


@pytest.fixture(scope="module")
def lab(lab_reachable_tmp: Callable[[str], Path]) -> Iterator[Lab]:
    with running_lab(lab_reachable_tmp("lab"), BASE_PORT) as built:
        yield built
