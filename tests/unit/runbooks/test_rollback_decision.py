"""The rollback's pure decisions: whether the database goes back, the restore id, the failed gate."""

from __future__ import annotations

import pytest

from recovery.engine import RunResult, StepResult
from recovery.errors import UsageError
from recovery.restore.database import restore_id_for, restore_names
from recovery.runbooks.rollback import (
    SinceFacts,
    decide_rollback,
    failed_gate_of,
    judge_after_restore,
    rollback_params,
)


def test_a_schema_change_restores_the_database() -> None:
    decision = decide_rollback(1, 4, 0, already_swapped=False)
    assert decision.restore_database and "1 -> 4" in decision.reason


def test_a_half_applied_migration_restores_the_database() -> None:
    assert decide_rollback(1, 2, 0, already_swapped=False).restore_database


def test_damaged_orders_restore_the_database_even_with_the_same_schema() -> None:
    decision = decide_rollback(4, 4, 7, already_swapped=False)
    assert decision.restore_database and decision.reason.startswith("7 orders")


def test_same_schema_and_clean_data_switches_code_only() -> None:
    decision = decide_rollback(4, 4, 0, already_swapped=False)
    assert not decision.restore_database and "code only" in decision.reason


def test_an_earlier_swap_is_finished_not_redone() -> None:
    decision = decide_rollback(1, None, 0, already_swapped=True)
    assert decision.restore_database and "already swapped" in decision.reason


def test_restore_id_is_valid_and_one_per_upgrade() -> None:
    restore_id = restore_id_for("20261125T221500Z-upgrade-3f2a")
    assert restore_id == "up20261125t221500z_3f2a"
    names = restore_names("orders", restore_id)  # refuses invalid or too long ids
    assert names.replaced == "orders_replaced_up20261125t221500z_3f2a"


def _run(code: str | None, failed_step: str | None) -> RunResult:
    return RunResult(
        "r",
        "upgrade",
        "lab",
        "failed",
        {},
        "u",
        "h",
        "t",
        "t",
        0,
        (StepResult("deploy", "d", True, "failed"),),
        failed_step,
        code,
        "m",
    )


def test_failed_gate_comes_from_the_error_code_else_the_step() -> None:
    assert failed_gate_of(_run("gate.migrate", "deploy")) == "migrate"
    assert failed_gate_of(_run("internal", "restore-point")) == "restore-point"


def test_rollback_params_refuse_unknown_releases() -> None:
    with pytest.raises(UsageError, match="unknown release"):
        rollback_params(to="v7")
    assert rollback_params(to="v1") == {"upgrade_run": "", "to": "v1", "health_timeout": 30}


def _since(**changes: int | None) -> SinceFacts:
    facts = {"schema_version": 1, "bad_orders": 0, "paid_without_capture": 0, "negative_stock": 0}
    facts.update(changes)
    return SinceFacts(**facts)  # type: ignore[arg-type]


def test_after_a_restore_only_the_carried_over_rows_are_judged() -> None:
    assert judge_after_restore(_since(), 1) is None
    assert "schema 4" in str(judge_after_restore(_since(schema_version=4), 1))
    assert str(judge_after_restore(_since(bad_orders=3), 1)).startswith("3 orders")
    assert "no captured payment" in str(judge_after_restore(_since(paid_without_capture=1), 1))
    assert "negative stock" in str(judge_after_restore(_since(negative_stock=2), 1))
