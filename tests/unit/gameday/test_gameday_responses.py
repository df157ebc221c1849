"""A scenario's expected responses are judged from Chaos Toolkit's journal: the exit code, and for a
refusal exactly one `error[CODE]: ...` line on stderr."""

from __future__ import annotations

from typing import Any

from recovery.gameday.measure import check_responses
from recovery.gameday.scenario import Response

REFUSED = "error[lock.held]: target lab is locked by run 20261206T230000Z-gameday-holder-1a2b; wait for it\n"


def journal(*runs: tuple[str, dict[str, Any] | None]) -> dict[str, Any]:
    return {
        "run": [
            {"activity": {"name": name}, "output": output, "status": "succeeded"} for name, output in runs
        ]
    }


def test_a_refusal_with_its_code_on_one_line_passes() -> None:
    [result] = check_responses(
        [Response(activity="back up", exit_code=4, error="lock.held")],
        journal(("back up", {"status": 4, "stdout": "{}", "stderr": REFUSED})),
    )
    assert result.passed and result.name == "response: back up"
    assert result.goal == "exit 4, one line error[lock.held]"
    assert result.reason.startswith("back up exited 4 with one line: error[lock.held]: target lab is locked")


def test_a_wrong_exit_code_another_error_or_a_traceback_fails_with_the_reason() -> None:
    expected = [Response(activity="back up", exit_code=4, error="lock.held")]
    wrong_code = check_responses(expected, journal(("back up", {"status": 0, "stdout": "", "stderr": ""})))
    assert not wrong_code[0].passed and wrong_code[0].reason == "back up exited 0, expected 4"
    other = check_responses(
        expected, journal(("back up", {"status": 4, "stdout": "", "stderr": "error[usage]: bad\n"}))
    )
    assert not other[0].passed and "one `error[lock.held]...` line" in other[0].reason
    traceback = "Traceback (most recent call last):\n  File x\nLockHeld: held\n"
    noisy = check_responses(expected, journal(("back up", {"status": 4, "stdout": "", "stderr": traceback})))
    assert not noisy[0].passed and noisy[0].measured == "exit 4, 3 stderr lines"


def test_an_activity_that_never_ran_or_raised_fails() -> None:
    expected = [Response(activity="restore", exit_code=0)]
    assert check_responses(expected, journal())[0].reason == "restore never ran"
    raised = {
        "run": [
            {
                "activity": {"name": "restore"},
                "output": None,
                "exception": ["Trace\n", "ActivityFailed: took too long\n"],
            }
        ]
    }
    [result] = check_responses(expected, raised)
    assert not result.passed and result.reason == "restore gave no exit code (ActivityFailed: took too long)"


def test_success_needs_only_the_exit_code() -> None:
    [result] = check_responses(
        [Response(activity="restore", exit_code=0)],
        journal(("restore", {"status": 0, "stdout": "{}", "stderr": ""})),
    )
    assert result.passed and result.measured == "exit 0, 0 stderr lines"
