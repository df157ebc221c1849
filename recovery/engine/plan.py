"""The plan of a runbook on a target: what `--dry-run` prints. Pure: it reads nothing and writes nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recovery.engine.events import PlannedStep
from recovery.engine.journal import JOURNAL_NAME, runs_dir
from recovery.engine.lock import lock_path
from recovery.engine.model import Runbook
from recovery.engine.redact import redact
from recovery.targets.model import Target


@dataclass(frozen=True)
class Plan:
    runbook: str
    target: str
    params: Mapping[str, Any]
    mutating: bool
    confirm: str | None
    lock: Path | None  # the lock a real run would take (None: read-only runbooks take none)
    journal: Path  # where a real run would journal, with <run_id> as a placeholder
    steps: tuple[PlannedStep, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def make_plan(target: Target, runbook: Runbook) -> Plan:
    return Plan(
        runbook=runbook.name,
        target=target.name,
        params=redact(runbook.params),
        mutating=runbook.mutating,
        confirm=runbook.confirm,
        lock=lock_path(target.state_dir, target.name) if runbook.mutating else None,
        journal=runs_dir(target.state_dir) / "<run_id>" / JOURNAL_NAME,
        steps=runbook.planned(),
    )
