"""The runbook engine: named idempotent steps, an append-only journal, a lock per target, dry-run
plans, resume of interrupted runs, and typed events for displays. Contract: docs/runbooks.md."""

from recovery.engine.engine import Engine, failed_run
from recovery.engine.events import (
    Event,
    PlannedStep,
    RunFinished,
    RunResumed,
    RunStarted,
    StepFailed,
    StepFinished,
    StepNote,
    StepProgress,
    StepReused,
    StepStarted,
    Subscriber,
)
from recovery.engine.journal import is_running, journal_path, read_journal, run_ids
from recovery.engine.lock import LockHolder, TargetLock, lock_path, read_holder
from recovery.engine.model import Runbook, RunContext, Step, StepOutput, StepOutputs, TypedOutput
from recovery.engine.plan import Plan
from recovery.engine.redact import REDACTED, redact, redact_text
from recovery.engine.registry import RunbookFactory, build_runbook, register_runbook, registered_runbooks
from recovery.engine.result import RunResult, StepResult, summarize

__all__ = [
    "REDACTED",
    "Engine",
    "Event",
    "LockHolder",
    "Plan",
    "PlannedStep",
    "RunContext",
    "RunFinished",
    "RunResult",
    "RunResumed",
    "RunStarted",
    "Runbook",
    "RunbookFactory",
    "Step",
    "StepFailed",
    "StepFinished",
    "StepNote",
    "StepOutput",
    "StepOutputs",
    "StepProgress",
    "StepResult",
    "StepReused",
    "StepStarted",
    "Subscriber",
    "TargetLock",
    "TypedOutput",
    "build_runbook",
    "failed_run",
    "is_running",
    "journal_path",
    "lock_path",
    "read_holder",
    "read_journal",
    "redact",
    "redact_text",
    "register_runbook",
    "registered_runbooks",
    "run_ids",
    "summarize",
]
