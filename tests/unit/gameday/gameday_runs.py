"""One builder of game day runs for the report and history tests."""

from __future__ import annotations

from recovery.gameday.measure import evaluate
from recovery.gameday.model import Bucket, GameDayRun, Measured, Objectives, TimelineEvent

OBJECTIVES = Objectives(time_to_detect_s=10, rto_s=30, orders_lost=0, error_rate=0.2)


def measured(detect: float | None = 4.2, rto: float | None = 12.5, lost: int = 0) -> Measured:
    return Measured(
        time_to_detect_s=detect,
        rto_s=rto,
        orders_acknowledged=420,
        orders_lost=lost,
        orders_set_aside=3,
        orders_queued=0,
        orders_replayed=0,
        error_rate=0.05,
        seconds_of_writes_lost=None,
        notifications=("team/run-started", "team/rolled-back"),
    )


def game_day(
    run_id: str = "20261206T200000Z-gameday-0001",
    started_at: str = "2026-12-06T20:00:00Z",
    scenario: str = "failed-upgrade-unhealthy",
    values: Measured | None = None,
    status: str = "completed",
) -> GameDayRun:
    values = values or measured()
    return GameDayRun(
        run_id=run_id,
        scenario=scenario,
        title="A release whose health check fails is rolled back <fast>",
        target="lab",
        started_at=started_at,
        duration_s=60.0,
        experiment_status=status,
        objectives=OBJECTIVES,
        measured=values,
        results=evaluate(OBJECTIVES, values),
        timeline=(
            TimelineEvent(0.0, "load", "load at 10 orders/s"),
            TimelineEvent(5.0, "fault", "upgrade to v2-unhealthy"),
            TimelineEvent(9.2, "detected", "health gate failed"),
            TimelineEvent(9.3, "step", "restore-database", 4.0),
            TimelineEvent(17.5, "recovered", "v1 serves again"),
            TimelineEvent(20.0, "verified", "ledger: every order present"),
        ),
        load=tuple(Bucket(s, 10, 2 if 9 <= s <= 17 else 0, 40.0 + s) for s in range(60)),
    )
