"""Fixtures shared by every test folder (keep this file small)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def lab_reachable_tmp(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """mktemp for directories the lab user must reach (PostgreSQL and sshd run as it when we are root).

    pytest's base temp dir is private to the user running the tests; this adds search permission
    (o+x, never read) on its parents so the lab user can traverse to the lab dir.
    """

    def make(name: str) -> Path:
        path = tmp_path_factory.mktemp(name)
        for parent in [path, *path.parents]:
            if parent == Path("/") or parent.stat().st_uid != os.geteuid():
                break
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
        return path

    return make
