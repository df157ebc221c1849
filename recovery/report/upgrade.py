"""The result document of `recovery upgrade` / `recovery rollback` (inside the JSON envelope).

Built from the runs' journal summaries alone, so what a pipeline reads and what `recovery runs show`
prints agree. Shape (version 1):

    {"report_version": 1, "status": "rolled_back", "exit_code": 6, "failed_gate": "health",
     "reason": "...", "detection_seconds": 12.3, "rollback_seconds": 14.1,
     "upgrade": {"run_id": ..., "status": ..., "steps": [{"name", "status", "duration_s", "code",
                 "message"}]},
     "rollback": {... same ..., "carry_over": {...}, "needs_a_person": [...]} | null}
"""

from __future__ import annotations

from typing import Any

from recovery.engine import RunResult
from recovery.runbooks.rollback import UpgradeOutcome

REPORT_VERSION = 1
# Steps after which a failure is known: their time is the detection time of a failed upgrade.
_DETECTING_STEPS = ("deploy", "gates")


def run_summary(result: RunResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "runbook": result.runbook,
        "status": result.status,
        "params": dict(result.params),
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "failed_step": result.failed_step,
        "steps": [
            {
                "name": s.name,
                "status": s.status,
                "duration_s": s.duration_s,
                "attempts": s.attempts,
                "code": s.code,
                "message": s.message,
            }
            for s in result.steps
        ],
    }


def _seconds(result: RunResult | None, names: tuple[str, ...] | None = None) -> float | None:
    if result is None:
        return None
    total = sum(s.duration_s or 0.0 for s in result.steps if names is None or s.name in names)
    return round(total, 3)


def _rollback_details(result: RunResult) -> dict[str, Any]:
    summary = run_summary(result)
    carried: dict[str, Any] | None = None
    for step in result.steps:
        if step.name == "carry-over" and step.output and "skipped" not in step.output:
            carried = dict(step.output)
        if step.name == "decide" and step.output:
            summary["database_restored"] = bool(step.output.get("restore_database"))
            summary["decision"] = step.output.get("reason")
        if step.name == "restore-beside" and step.output and "database" in step.output:
            # Whether the copy swapped in was restored and verified while the upgrade ran.
            summary["restored_ahead"] = bool(step.output.get("built_ahead"))
    summary.setdefault("restored_ahead", None)
    summary["carry_over"] = carried
    summary["needs_a_person"] = list(carried.get("needs_a_person", [])) if carried else []
    summary["needs_a_person_count"] = int(carried.get("needs_a_person_count", 0)) if carried else 0
    summary["needs_a_person_file"] = carried.get("needs_a_person_file") if carried else None
    return summary


def outcome_report(outcome: UpgradeOutcome) -> dict[str, Any]:
    return {
        "report_version": REPORT_VERSION,
        "status": outcome.status,
        "exit_code": int(outcome.exit_code),
        "failed_gate": outcome.failed_gate,
        "reason": outcome.reason,
        "detection_seconds": _seconds(outcome.upgrade, _DETECTING_STEPS) if outcome.failed_gate else None,
        "rollback_seconds": _seconds(outcome.rollback),
        "upgrade": run_summary(outcome.upgrade) if outcome.upgrade else None,
        "rollback": _rollback_details(outcome.rollback) if outcome.rollback else None,
    }


def rollback_report(result: RunResult, *, status: str, exit_code: int, reason: str | None) -> dict[str, Any]:
    return {
        "report_version": REPORT_VERSION,
        "status": status,
        "exit_code": exit_code,
        "failed_gate": None,
        "reason": reason,
        "detection_seconds": None,
        "rollback_seconds": _seconds(result),
        "upgrade": None,
        "rollback": _rollback_details(result),
    }
