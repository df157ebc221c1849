"""Fixtures of the unit tests: an offline keyring file, as the air-gapped sites use."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recovery.backup.keys import Keyring, write_keyring


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    """A keyring of one key, `kek-2026`, in a 0600 file (a test may define its own to hold more)."""
    path = tmp_path / "keyring.json"
    write_keyring(path, {"kek-2026": os.urandom(32)}, active="kek-2026")
    return Keyring.load(path)
