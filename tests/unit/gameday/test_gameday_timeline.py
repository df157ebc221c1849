"""The timeline merges chaostoolkit-lib's journal with the runbook journals on one clock."""

from __future__ import annotations

from datetime import UTC, datetime

from recovery.gameday.scenario import Marker, RecoveryBlock
from recovery.gameday.timeline import build_timeline

STARTED = datetime(2026, 12, 6, 20, 0, 0, tzinfo=UTC)
BLOCK = RecoveryBlock(
    name="recovery",
    fault="deploy v2-unhealthy",
    detected_when=Marker(runbook="upgrade", event="step.failed"),
    recovered_when=Marker(runbook="rollback", event="run.finished", status="ok"),
)
CHAOS = {
    "status": "completed",
    "start": "2026-12-06T20:00:00.100000",
    "end": "2026-12-06T20:01:10",
    "run": [
        {
            "activity": {"name": "place orders", "background": True},
            "start": "2026-12-06T20:00:00.5",
            "duration": 60.0,
        },
        {"activity": {"name": "deploy v2-unhealthy"}, "start": "2026-12-06T20:00:03", "duration": 40.0},
    ],
    "steady_states": {"after": {"steady_state_met": True}},
}
UPGRADE = [
    {"event": "run.started", "at": "2026-12-06T20:00:04.000Z", "runbook": "upgrade", "run_id": "u1"},
    {"event": "step.finished", "at": "2026-12-06T20:00:10.000Z", "step": "preflight", "duration_s": 6.0},
    {"event": "step.failed", "at": "2026-12-06T20:00:20.500Z", "step": "deploy", "duration_s": 10.5},
    {"event": "run.finished", "at": "2026-12-06T20:00:20.600Z", "status": "failed"},
]
ROLLBACK = [
    {"event": "run.started", "at": "2026-12-06T20:00:20.700Z", "runbook": "rollback", "run_id": "r1"},
    {"event": "step.finished", "at": "2026-12-06T20:00:27.000Z", "step": "swap-in", "duration_s": 6.0},
    {"event": "run.finished", "at": "2026-12-06T20:00:29.000Z", "status": "ok"},
]


def test_detection_and_recovery_are_measured_from_the_fault() -> None:
    timeline = build_timeline(STARTED, CHAOS, [UPGRADE, ROLLBACK], BLOCK)
    assert timeline.fault_at_s == 3.0
    assert timeline.time_to_detect_s == 17.5 and timeline.rto_s == 26.0
    labels = [(event.at_s, event.kind, event.label) for event in timeline.events]
    assert labels[:3] == [
        (0.5, "load", "place orders"),
        (3.0, "fault", "deploy v2-unhealthy"),
        (4.0, "decision", "upgrade started (u1)"),
    ]
    assert (10.0, "step", "upgrade: deploy FAILED") in labels and (
        20.5,
        "detected",
        "upgrade: deploy",
    ) in labels
    assert (29.0, "recovered", "rollback ok") in labels and labels[-1] == (
        70.0,
        "verified",
        "steady state met again",
    )


def test_a_rollback_that_failed_is_no_recovery() -> None:
    failed = [*ROLLBACK[:-1], {"event": "run.finished", "at": "2026-12-06T20:00:29.000Z", "status": "failed"}]
    timeline = build_timeline(STARTED, CHAOS, [UPGRADE, failed], BLOCK)
    assert timeline.time_to_detect_s == 17.5 and timeline.rto_s is None


def test_a_marker_can_name_the_step_whose_end_counts() -> None:
    block = RecoveryBlock(
        name="recovery",
        fault="deploy v2-unhealthy",
        detected_when=Marker(runbook="upgrade", event="step.finished", step="preflight"),
        recovered_when=Marker(runbook="rollback", event="step.finished", step="swap-in"),
    )
    timeline = build_timeline(STARTED, CHAOS, [UPGRADE, ROLLBACK], block)
    assert (timeline.time_to_detect_s, timeline.rto_s) == (7.0, 24.0)
    other = block.model_copy(
        update={"detected_when": Marker(runbook="upgrade", event="step.finished", step="gates")}
    )
    assert build_timeline(STARTED, CHAOS, [UPGRADE, ROLLBACK], other).time_to_detect_s is None


def test_a_run_started_marker_is_the_runs_first_record() -> None:
    block = BLOCK.model_copy(update={"detected_when": Marker(runbook="rollback", event="run.started")})
    timeline = build_timeline(STARTED, CHAOS, [UPGRADE, ROLLBACK], block)
    assert timeline.time_to_detect_s == 17.7
    assert (20.7, "detected", "rollback: run.started") in [(e.at_s, e.kind, e.label) for e in timeline.events]


def test_an_activity_marker_is_that_activitys_end_after_the_fault() -> None:
    watch = {"activity": {"name": "the watch alarms"}, "start": "2026-12-06T20:00:04", "duration": 6.25}
    before = {"activity": {"name": "the watch alarms"}, "start": "2026-12-06T20:00:01", "duration": 0.5}
    chaos = {**CHAOS, "run": [CHAOS["run"][0], before, CHAOS["run"][1], watch]}
    block = BLOCK.model_copy(update={"detected_when": Marker(activity="the watch alarms")})
    timeline = build_timeline(STARTED, chaos, [UPGRADE, ROLLBACK], block)
    assert timeline.time_to_detect_s == 7.25  # the run before the fault does not count
    assert (10.25, "detected", "the watch alarms") in [(e.at_s, e.kind, e.label) for e in timeline.events]
    assert timeline.rto_s == 26.0
