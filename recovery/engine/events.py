"""The typed events the engine emits while a run progresses.

Subscribers are plain callables taking one event. The journal is one subscriber (always first); the
CLI adds a progress display; notification and report writers can add theirs. Every value in an event
has already passed through redaction, so no subscriber ever sees a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

RunStatus = Literal["ok", "failed"]


@dataclass(frozen=True)
class PlannedStep:
    """A step as the plan, the journal and the display describe it (no callable)."""

    name: str
    description: str
    mutating: bool
    acts_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunStarted:
    kind: ClassVar[str] = "run.started"
    run_id: str
    at: str
    runbook: str
    runbook_module: str
    target: str
    params: Mapping[str, Any]
    steps: tuple[PlannedStep, ...]
    mutating: bool
    user: str
    host: str
    pid: int


@dataclass(frozen=True)
class RunResumed:
    kind: ClassVar[str] = "run.resumed"
    run_id: str
    at: str
    runbook: str
    target: str
    reused: tuple[str, ...]
    user: str
    host: str
    pid: int


@dataclass(frozen=True)
class StepReused:
    """A step finished by an earlier attempt of this run; its recorded output is reused (not journaled)."""

    kind: ClassVar[str] = "step.reused"
    run_id: str
    at: str
    step: str
    index: int
    total: int


@dataclass(frozen=True)
class StepStarted:
    kind: ClassVar[str] = "step.started"
    run_id: str
    at: str
    step: str
    index: int
    total: int
    description: str
    attempt: int


@dataclass(frozen=True)
class StepProgress:
    """A step's progress report, for displays only (not journaled: too chatty for an audit log)."""

    kind: ClassVar[str] = "step.progress"
    run_id: str
    at: str
    step: str
    message: str
    done: float | None = None
    total: float | None = None


@dataclass(frozen=True)
class StepNote:
    """Something a step wants on the audit record, e.g. a decision and its reason sentence."""

    kind: ClassVar[str] = "step.note"
    run_id: str
    at: str
    step: str
    message: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class StepFinished:
    kind: ClassVar[str] = "step.finished"
    run_id: str
    at: str
    step: str
    index: int
    total: int
    duration_s: float
    output: Mapping[str, Any]


@dataclass(frozen=True)
class StepFailed:
    kind: ClassVar[str] = "step.failed"
    run_id: str
    at: str
    step: str
    index: int
    total: int
    duration_s: float
    code: str
    message: str
    traceback: str | None = None  # only for unexpected errors; journaled, never printed without --debug


@dataclass(frozen=True)
class RunFinished:
    kind: ClassVar[str] = "run.finished"
    run_id: str
    at: str
    status: RunStatus
    duration_s: float
    failed_step: str | None = None
    code: str | None = None
    message: str | None = None


Event = (
    RunStarted
    | RunResumed
    | StepReused
    | StepStarted
    | StepProgress
    | StepNote
    | StepFinished
    | StepFailed
    | RunFinished
)
Subscriber = Callable[[Event], None]

# Events that make up the audit record; the others only drive displays.
JOURNALED: tuple[type[Event], ...] = (
    RunStarted,
    RunResumed,
    StepStarted,
    StepNote,
    StepFinished,
    StepFailed,
    RunFinished,
)
