"""Names validated by a pattern refuse a trailing newline (`$` would accept one before the end).

A restore point `"before-upgrade\\n"` would otherwise write a broken `recovery_target_name` line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from recovery.backup.naming import BackupName
from recovery.backup.wal import check_restore_point_name, is_wal_file_name
from recovery.engine.journal import RUN_ID_PATTERN
from recovery.engine.model import NAME_PATTERN
from recovery.errors import UsageError
from recovery.restore.database import restore_names
from recovery.runbooks.backup import backup_params


def test_a_restore_point_with_a_trailing_newline_is_refused() -> None:
    assert check_restore_point_name("before-upgrade") == "before-upgrade"
    with pytest.raises(UsageError, match="is not allowed"):
        check_restore_point_name("before-upgrade\n")
    with pytest.raises(UsageError, match="must be 1-63"):
        backup_params(["orders"], "before-upgrade\n")


REFUSERS: list[tuple[str, Callable[[], Any]]] = [
    ("backup name", lambda: BackupName.parse("20261125-orders-daily.bak\n")),
    ("restore id", lambda: restore_names("orders", "r1\n")),
    ("live database", lambda: restore_names("orders\n", "r1")),
]


@pytest.mark.parametrize(("what", "call"), REFUSERS, ids=[what for what, _ in REFUSERS])
def test_other_names_with_a_trailing_newline_are_refused(what: str, call: Callable[[], Any]) -> None:
    with pytest.raises((UsageError, ValidationError, ValueError)):
        call()


def test_patterns_do_not_match_before_a_trailing_newline() -> None:
    assert RUN_ID_PATTERN.match("20261125T101010Z-backup-abcd")
    assert not RUN_ID_PATTERN.match("20261125T101010Z-backup-abcd\n")
    assert not NAME_PATTERN.match("backup\n")
    assert is_wal_file_name("000000010000000000000001")
    assert not is_wal_file_name("000000010000000000000001\n")
