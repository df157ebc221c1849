"""Fixtures shared by every test folder (keep this file small)."""

from __future__ import annotations

import random
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from worker_ports import ports


@pytest.fixture(scope="session")
def lab_reachable_tmp() -> Iterator[Callable[[str], Path]]:
    """mktemp for directories the lab user must reach (PostgreSQL and sshd run as it when we are root).

    Not under pytest's base temp dir: that is private to the user running the tests, and every other
    pytest session of that user resets its permissions and prunes old runs, which would pull a running
    lab's files away. These directories live under /var/tmp and are removed when the session ends.
    """
    root = Path(tempfile.mkdtemp(prefix="order-recovery-tests-", dir="/var/tmp"))
    root.chmod(0o755)
    counter = 0

    def make(name: str) -> Path:
        nonlocal counter
        counter += 1
        path = root / f"{name}{counter}"
        path.mkdir(mode=0o755)
        return path

    try:
        yield make
    finally:
        shutil.rmtree(root, ignore_errors=True)


# The slice of the tests' port range for single-port unit tests: 25900-25999 in a serial run, shifted
# per pytest-xdist worker (tests/worker_ports.py).
UNIT_PORTS = ports(25900, 26000)


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A port of UNIT_PORTS on 127.0.0.1 that nothing listens on now (several test runs share a machine)."""
    taken: set[int] = set()

    def pick() -> int:
        for port in random.sample(list(UNIT_PORTS), len(UNIT_PORTS)):
            if port in taken:
                continue
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
            taken.add(port)
            return port
        raise RuntimeError(f"no free port in {UNIT_PORTS.start}-{UNIT_PORTS.stop - 1}")

    return pick


# The longest modules, longest first (`make test` prints the slowest tests). Under pytest-xdist with
# `--dist loadfile --no-loadscope-reorder` a worker takes whole modules in collection order: started
# first, the long ones run side by side instead of one of them running alone at the end of the run.
LONGEST_FIRST = (
    "tests/lab/test_upgrade_rollback.py",  # 450-650 s on a busy machine: as long as all others below
    "tests/lab/test_gamedays.py",  # the game day library but the site scenarios, on one lab
    "tests/lab/test_gamedays_sites.py",  # the site game days on a lab with its watch: 3-7 min
    "tests/lab/test_realtime.py",
    "tests/lab/test_backup_restore.py",
    "tests/lab/test_realtime_restore.py",
    "tests/service/test_deploy_playbook.py",
    "tests/lab/test_playbooks.py",
    "tests/lab/test_lab_e2e.py",
    "tests/lab/test_watch.py",
    "tests/service/test_pgdump_restore.py",
    "tests/service/test_faulty_releases.py",
    "tests/lab/test_preflight_load.py",
    "tests/service/test_api.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the longest modules to the front; a module's own tests keep their order."""
    rank = {module: index for index, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
