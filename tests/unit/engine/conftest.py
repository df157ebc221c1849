"""Fixtures of the engine tests: a target in tmp_path and child runs that are always reaped."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_helpers import write_target

from recovery.targets import Target, load_target


@pytest.fixture
def target_path(tmp_path: Path) -> Path:
    return write_target(tmp_path)


@pytest.fixture
def target(target_path: Path) -> Target:
    return load_target(target_path)


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Child processes a test starts; killed and reaped at teardown even when the test fails."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)
        if child.stderr is not None:
            child.stderr.close()
