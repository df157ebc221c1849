"""The timeline of a game day, from chaostoolkit-lib's journal and the toolkit's own run journals. Pure.

Chaos Toolkit knows when each activity of the experiment ran (the fault among them); the runbook
journals know when the toolkit detected the failure and what it did about it, step by step. Merged on one
clock (seconds since the game day started), they give the time to detect (fault -> the `detected_when`
event) and the time to recover (fault -> the `recovered_when` event).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from recovery.gameday.model import EventKind, TimelineEvent
from recovery.gameday.scenario import Marker, RecoveryBlock


def moment(text: str) -> datetime:
    """An ISO time from either journal; chaostoolkit-lib writes naive UTC times."""
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Timeline:
    events: tuple[TimelineEvent, ...]
    fault_at_s: float | None
    detected_at_s: float | None
    recovered_at_s: float | None
    verified_at_s: float | None

    @property
    def time_to_detect_s(self) -> float | None:
        if self.fault_at_s is None or self.detected_at_s is None:
            return None
        return round(self.detected_at_s - self.fault_at_s, 3)

    @property
    def rto_s(self) -> float | None:
        if self.fault_at_s is None or self.recovered_at_s is None:
            return None
        return round(self.recovered_at_s - self.fault_at_s, 3)


def _matches(marker: Marker | None, runbook: str, record: Mapping[str, Any]) -> bool:
    if marker is None or runbook != marker.runbook or record.get("event") != marker.event:
        return False
    if marker.step is not None and record.get("step") != marker.step:
        return False
    return marker.status is None or record.get("status") == marker.status


def _ends(marker: Marker | None, activity: str) -> bool:
    return marker is not None and marker.activity == activity


def build_timeline(
    started: datetime,
    chaos_journal: Mapping[str, Any],
    run_journals: Sequence[Sequence[Mapping[str, Any]]],
    block: RecoveryBlock,
) -> Timeline:
    def at(text: str) -> float:
        return round((moment(text) - started).total_seconds(), 3)

    events: list[TimelineEvent] = []
    fault_at: float | None = None
    detected = recovered = None
    for run in chaos_journal.get("run") or []:
        activity = run.get("activity") or {}
        name = str(activity.get("name", "?"))
        if not run.get("start"):
            continue
        begin = at(run["start"])
        if name == block.fault and fault_at is None:
            fault_at = begin
            events.append(TimelineEvent(begin, "fault", name))
            continue
        kind: EventKind = "load" if activity.get("background") else "note"
        events.append(TimelineEvent(begin, kind, name, run.get("duration")))
        end = round(begin + float(run.get("duration") or 0.0), 3)
        if fault_at is not None and detected is None and _ends(block.detected_when, name):
            detected = end
            events.append(TimelineEvent(end, "detected", name))
        if fault_at is not None and recovered is None and _ends(block.recovered_when, name):
            recovered = end
            events.append(TimelineEvent(end, "recovered", name))
    for records in run_journals:
        if not records:
            continue
        head = records[0]
        runbook = str(head.get("runbook", "?"))
        events.append(TimelineEvent(at(head["at"]), "decision", f"{runbook} started ({head.get('run_id')})"))
        for record in records:  # the head too: a `run.started` marker is that record
            when = at(record["at"])
            if record.get("event") in ("step.finished", "step.failed"):
                duration = float(record.get("duration_s") or 0.0)
                suffix = " FAILED" if record["event"] == "step.failed" else ""
                events.append(
                    TimelineEvent(
                        round(when - duration, 3), "step", f"{runbook}: {record['step']}{suffix}", duration
                    )
                )
            after_fault = fault_at is None or when >= fault_at
            if detected is None and after_fault and _matches(block.detected_when, runbook, record):
                detected = when
                events.append(
                    TimelineEvent(when, "detected", f"{runbook}: {record.get('step') or record['event']}")
                )
            if recovered is None and after_fault and _matches(block.recovered_when, runbook, record):
                recovered = when
                events.append(TimelineEvent(when, "recovered", f"{runbook} {record.get('status', 'done')}"))
    after = (chaos_journal.get("steady_states") or {}).get("after") or {}
    verified = None
    if after.get("steady_state_met") and chaos_journal.get("end"):
        verified = at(chaos_journal["end"])
        events.append(TimelineEvent(verified, "verified", "steady state met again"))
    ordered = tuple(sorted(events, key=lambda event: event.at_s))
    return Timeline(ordered, fault_at, detected, recovered, verified)
