"""Hand-over files: written where the readers look, read only for runs since a moment."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from recovery.restore.handover import handed_over_since, handover_path, write_handover


def test_runs_since_the_moment_are_read_and_older_ones_are_not(tmp_path: Path) -> None:
    old = write_handover(tmp_path, "20261206T100000Z-rollback-0001", [{"order_id": "o-old", "reason": "x"}])
    new = write_handover(
        tmp_path, "20261206T120000Z-rollback-0002", [{"order_id": "o-1"}, {"order_id": "o-2"}]
    )
    assert new == handover_path(tmp_path, "20261206T120000Z-rollback-0002")
    found = handed_over_since(tmp_path, datetime(2026, 12, 6, 11, 0, tzinfo=UTC))
    assert found == {"o-1": new, "o-2": new}
    assert handed_over_since(tmp_path, datetime(2026, 12, 6, 9, 0, tzinfo=UTC))["o-old"] == old
    assert handed_over_since(tmp_path / "nothing-here", datetime(2026, 12, 6, tzinfo=UTC)) == {}
