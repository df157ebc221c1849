"""What every verification returns, and the one way a failed verification becomes an error.

Fingerprint comparisons, business invariants and the service smoke test each return a frozen report made
of checks; a check carries its name, whether it passed, how many things were wrong (rows, mismatches or
failed steps) and a reason sentence an operator can act on. Callers that must stop on failure (the
restore runbook before a swap, an upgrade health gate) pass the report to `ensure_passed`.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from recovery.errors import VerificationFailed


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CheckResult(Frozen):
    """One named check of a verification."""

    name: str
    passed: bool
    violations: int  # rows, mismatches or failed steps found by this check; 0 when it passed
    examples: tuple[str, ...] = ()  # up to a few keys that show the problem, never row contents
    reason: str  # one sentence: what was observed and, on failure, what it means


class VerificationReport(Protocol):
    """What `ensure_passed` needs from a report."""

    @property
    def subject(self) -> str: ...

    @property
    def passed(self) -> bool: ...

    @property
    def checks(self) -> tuple[CheckResult, ...]: ...


def failed_checks(report: VerificationReport) -> tuple[CheckResult, ...]:
    return tuple(check for check in report.checks if not check.passed)


def failure_line(report: VerificationReport) -> str | None:
    """The one-line summary of a failed report, naming its first failing check; None when it passed."""
    if report.passed:
        return None
    failures = failed_checks(report)
    if not failures:
        # A report may fail without a failing check only if it observed nothing at all.
        return f"verification of {report.subject} failed: no check could run; rerun it and read its log"
    first = failures[0]
    others = len(failures) - 1
    more = f" (and {others} more failing check{'s' if others != 1 else ''})" if others else ""
    return (
        f"verification of {report.subject} failed: {first.name} found {first.violations} "
        f"problem{'s' if first.violations != 1 else ''}{more}: {first.reason}"
    )


def ensure_passed(report: VerificationReport) -> None:
    """Raise VerificationFailed with one line naming the first failing check and its count."""
    line = failure_line(report)
    if line is not None:
        raise VerificationFailed(line)
