"""Fixtures shared by every test folder (keep this file small)."""

from __future__ import annotations

import random
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


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


UNIT_PORTS = range(25900, 26000)  # the slice of the tests' port range for single-port unit tests


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A port of 25900-25999 on 127.0.0.1 that nothing listens on now (several test runs share a machine)."""
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
        raise RuntimeError("no free port in 25900-25999")

    return pick
