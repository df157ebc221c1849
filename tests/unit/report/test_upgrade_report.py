"""The upgrade report (JSON result) and its JUnit XML, from run results."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from recovery.engine import RunResult, StepResult
from recovery.errors import ExitCode, UsageError
from recovery.report.junit import junit_document, write_junit
from recovery.report.upgrade import outcome_report
from recovery.runbooks.rollback import UpgradeOutcome


def _upgrade() -> RunResult:
    return RunResult(
        "20261125T221500Z-upgrade-3f2a",
        "upgrade",
        "lab",
        "failed",
        {"release": "v2-crash"},
        "u",
        "h",
        "t0",
        "t1",
        0,
        (
            StepResult("preflight", "p", False, "ok", 1, 0.5),
            StepResult("restore-point", "r", True, "ok", 1, 1.0),
            StepResult("deploy", "d", True, "failed", 1, 12.0, code="gate.health", message="no answer"),
            StepResult("gates", "g", False, "not_run"),
        ),
        "deploy",
        "gate.health",
        "no answer",
    )


def _rollback() -> RunResult:
    damaged = {
        "order_id": "o-1",
        "status": "paid",
        "total_cents": 100,
        "items_cents": 300,
        "payments": ["t-1"],
        "reason": "total 100 does not match its lines (300)",
    }
    return RunResult(
        "20261125T221530Z-rollback-aaaa",
        "rollback",
        "lab",
        "ok",
        {},
        "u",
        "h",
        "t1",
        "t2",
        0,
        (
            StepResult(
                "decide", "d", False, "ok", 1, 0.1, {"restore_database": True, "reason": "schema changed"}
            ),
            StepResult(
                "carry-over",
                "c",
                True,
                "ok",
                1,
                0.4,
                {"orders_inserted": 3, "needs_a_person": [damaged], "needs_a_person_count": 1},
            ),
            StepResult("verify", "v", False, "ok", 1, 0.2),
        ),
    )


def test_report_names_the_gate_the_detection_time_and_what_needs_a_person() -> None:
    outcome = UpgradeOutcome(
        "rolled_back", ExitCode.ROLLED_BACK, _upgrade(), _rollback(), failed_gate="health", reason="no answer"
    )
    report = outcome_report(outcome)
    assert report["status"] == "rolled_back" and report["exit_code"] == 6
    assert report["failed_gate"] == "health"
    assert report["detection_seconds"] == 12.0  # deploy + gates, not preflight or the restore point
    assert report["rollback_seconds"] == 0.7
    assert [s["duration_s"] for s in report["upgrade"]["steps"]] == [0.5, 1.0, 12.0, None]
    assert report["rollback"]["database_restored"] is True
    assert report["rollback"]["needs_a_person"][0]["order_id"] == "o-1"
    assert report["rollback"]["needs_a_person_count"] == 1


def test_junit_has_one_case_per_step_plus_the_failed_gate(tmp_path: Path) -> None:
    report = outcome_report(
        UpgradeOutcome(
            "rolled_back",
            ExitCode.ROLLED_BACK,
            _upgrade(),
            _rollback(),
            failed_gate="health",
            reason="no answer",
        )
    )
    path = write_junit(tmp_path / "report.xml", report)
    root = ET.parse(path).getroot()
    suites = root.findall("testsuite")
    assert [s.get("tests") for s in suites] == ["5", "3"]
    upgrade = suites[0]
    assert upgrade.get("failures") == "2" and upgrade.get("skipped") == "1"
    failed = {c.get("name"): c.find("failure") for c in upgrade.findall("testcase")}
    assert failed["deploy"] is not None and failed["deploy"].get("type") == "gate.health"
    assert failed["gate health"] is not None and failed["preflight"] is None
    assert suites[1].get("failures") == "0"


def test_a_clean_upgrade_has_no_failures() -> None:
    run = RunResult(
        "20261125T221500Z-upgrade-3f2a",
        "upgrade",
        "lab",
        "ok",
        {},
        "u",
        "h",
        "t0",
        "t1",
        0,
        (StepResult("preflight", "p", False, "ok", 1, 0.5),),
    )
    report = outcome_report(UpgradeOutcome("upgraded", ExitCode.OK, run))
    assert report["detection_seconds"] is None and report["rollback"] is None
    suite = junit_document(report).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"


def test_junit_path_in_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        write_junit(tmp_path / "nope" / "report.xml", {"upgrade": None})
    with pytest.raises(UsageError, match="is a directory"):
        write_junit(tmp_path, {"upgrade": None})
