"""What a game day run produced: its timeline, the load it carried, what was lost, and its objectives.

A `GameDayRun` is written once, at the end of a run, as `<report-dir>/<run_id>/run.json` (the JSON report)
and read back by `history`. Times on the timeline and in the load series are seconds since the run started,
so two runs of one scenario compare directly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from recovery.errors import UsageError

REPORT_FORMAT = 1

EventKind = Literal["load", "fault", "detected", "decision", "step", "recovered", "verified", "note"]


@dataclass(frozen=True)
class TimelineEvent:
    at_s: float
    kind: EventKind
    label: str
    duration_s: float | None = None  # a runbook step's duration, drawn as a bar


@dataclass(frozen=True)
class Bucket:
    """One second of load: requests acknowledged, requests that failed, and the p95 latency of the acks."""

    at_s: int
    acknowledged: int
    failed: int
    p95_ms: float | None

    @property
    def error_rate(self) -> float:
        total = self.acknowledged + self.failed
        return self.failed / total if total else 0.0


@dataclass(frozen=True)
class Objectives:
    """What the scenario promises; None means the scenario sets no goal for that measure."""

    time_to_detect_s: float | None = None
    rto_s: float | None = None
    orders_lost: int | None = 0
    error_rate: float | None = None


@dataclass(frozen=True)
class Measured:
    time_to_detect_s: float | None
    rto_s: float | None
    orders_acknowledged: int
    orders_lost: int
    orders_set_aside: int  # listed for a person (not lost, not in the books)
    orders_queued: int
    orders_replayed: int
    error_rate: float  # failed / all requests between the fault and recovery (0 when none)
    seconds_of_writes_lost: float | None
    notifications: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObjectiveResult:
    name: str
    goal: str
    measured: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class GameDayRun:
    run_id: str
    scenario: str  # the experiment file's stem, e.g. "failed-upgrade-unhealthy"
    title: str
    target: str
    started_at: str  # ISO 8601, UTC
    duration_s: float
    experiment_status: str  # what chaostoolkit-lib's journal says: completed, failed, aborted, interrupted
    objectives: Objectives
    measured: Measured
    results: tuple[ObjectiveResult, ...]
    timeline: tuple[TimelineEvent, ...]
    load: tuple[Bucket, ...]
    format: int = field(default=REPORT_FORMAT)

    @property
    def passed(self) -> bool:
        return self.experiment_status == "completed" and all(result.passed for result in self.results)


def to_json(run: GameDayRun) -> str:
    document = asdict(run)
    document["passed"] = run.passed
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def from_json(text: str, source: Path) -> GameDayRun:
    try:
        doc: dict[str, Any] = json.loads(text)
        if doc.get("format") != REPORT_FORMAT:
            raise ValueError(f"report format {doc.get('format')!r}, expected {REPORT_FORMAT}")
        return GameDayRun(
            run_id=doc["run_id"],
            scenario=doc["scenario"],
            title=doc["title"],
            target=doc["target"],
            started_at=doc["started_at"],
            duration_s=float(doc["duration_s"]),
            experiment_status=doc["experiment_status"],
            objectives=Objectives(**doc["objectives"]),
            measured=Measured(
                **{**doc["measured"], "notifications": tuple(doc["measured"]["notifications"])}
            ),
            results=tuple(ObjectiveResult(**r) for r in doc["results"]),
            timeline=tuple(TimelineEvent(**e) for e in doc["timeline"]),
            load=tuple(Bucket(**b) for b in doc["load"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{source} is not a game day report ({exc}); rerun the game day or remove the file",
            code="gameday.report_invalid",
        ) from None
