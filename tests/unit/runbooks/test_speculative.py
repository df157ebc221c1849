"""The copy restored ahead: its record survives a round trip, and a missing or foreign record is never
trusted (the rollback then builds its own copy)."""

from __future__ import annotations

import json
from pathlib import Path

from recovery.runbooks import speculative
from recovery.runbooks.speculative import MARKER, VerifiedCopy
from recovery.runbooks.upgrade_point import RestorePoint
from recovery.targets.model import Target


def _point(tmp_path: Path) -> RestorePoint:
    return RestorePoint(tmp_path, "2026-11-25T22:15:00+00:00", "0/1", 1, "v1", 10, "k", "d3JhcHBlZA==")


def test_a_verified_copy_survives_its_record() -> None:
    copy = VerifiedCopy("orders_restore_up1_a", "up1_a", 1, 1.5, 0.25, {"load": 1.0})
    assert VerifiedCopy.from_json(json.loads(json.dumps(copy.to_json()))) == copy


def test_without_a_record_or_with_another_ids_record_no_copy_is_trusted(tmp_path: Path) -> None:
    point = _point(tmp_path)
    target: Target = None  # type: ignore[assignment]  # never reached: no record, no database lookup
    assert speculative.read_marker(target, point, "up1_a") is None
    other = VerifiedCopy("orders_restore_up2_b", "up2_b", 1, 1, 1, {})
    (tmp_path / MARKER).write_text(json.dumps(other.to_json()))
    assert speculative.read_marker(target, point, "up1_a") is None
    (tmp_path / MARKER).write_text("{torn")
    assert speculative.read_marker(target, point, "up1_a") is None
    state = speculative.wait_for_copy(target, point, "up1_a")
    assert state.copy is None and "no verified copy" in state.reason
