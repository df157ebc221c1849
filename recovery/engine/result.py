"""What a run came to, computed from its journal records alone (a pure function).

The engine returns this after a run and `recovery runs show` renders the same thing from the file,
so what a pipeline gets and what the audit log says cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

StepStatus = Literal["ok", "failed", "running", "not_run"]
RunState = Literal["ok", "failed", "interrupted", "running"]


@dataclass(frozen=True)
class StepResult:
    name: str
    description: str
    mutating: bool
    status: StepStatus
    attempts: int = 0  # how many times the step was started (more than one after a resume)
    duration_s: float | None = None  # of the attempt that finished or failed
    output: Mapping[str, Any] | None = None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class RunResult:
    run_id: str
    runbook: str
    target: str
    status: RunState
    params: Mapping[str, Any]
    user: str
    host: str
    started_at: str
    finished_at: str | None
    resumes: int
    steps: tuple[StepResult, ...]
    failed_step: str | None = None
    code: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def step(self, name: str) -> StepResult:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"run {self.run_id} has no step {name!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class NotAJournal(ValueError):
    """The records do not begin with run.started."""


def summarize(records: Sequence[Mapping[str, Any]], *, running: bool = False) -> RunResult:
    """Fold a run's journal records into its result. `running` tells an unfinished run from a dead one."""
    if not records or records[0].get("event") != "run.started":
        raise NotAJournal("the journal does not begin with a run.started record")
    head = records[0]
    steps: dict[str, dict[str, Any]] = {
        s["name"]: {
            "name": s["name"],
            "description": s["description"],
            "mutating": s["mutating"],
            "status": "not_run",
            "attempts": 0,
        }
        for s in head["steps"]
    }
    finish: Mapping[str, Any] | None = None
    resumes = 0
    for record in records[1:]:
        event = record["event"]
        step = steps.get(record.get("step", ""))
        if event == "step.started" and step is not None:
            step.update(
                status="running",
                attempts=step["attempts"] + 1,
                duration_s=None,
                output=None,
                code=None,
                message=None,
            )
        elif event == "step.finished" and step is not None:
            step.update(status="ok", duration_s=record["duration_s"], output=record["output"])
        elif event == "step.failed" and step is not None:
            step.update(
                status="failed",
                duration_s=record["duration_s"],
                code=record["code"],
                message=record["message"],
            )
        elif event == "run.resumed":
            resumes += 1
            finish = None
        elif event == "run.finished":
            finish = record
    if finish is not None:
        status: RunState = "ok" if finish["status"] == "ok" else "failed"
    else:
        status = "running" if running else "interrupted"
    return RunResult(
        run_id=head["run_id"],
        runbook=head["runbook"],
        target=head["target"],
        status=status,
        params=head["params"],
        user=head["user"],
        host=head["host"],
        started_at=head["at"],
        finished_at=finish["at"] if finish else None,
        resumes=resumes,
        steps=tuple(StepResult(**fields) for fields in steps.values()),
        failed_step=finish.get("failed_step") if finish else None,
        code=finish.get("code") if finish else None,
        message=finish.get("message") if finish else None,
    )
