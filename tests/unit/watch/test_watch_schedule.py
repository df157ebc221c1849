"""The watch's schedule: what is due, and why, in sentences checked verbatim."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from recovery.watch.schedule import (
    ARCHIVING,
    DAILY_BACKUP,
    REALTIME_BACKUP,
    RETENTION,
    SHIP_WAL,
    Due,
    JobHistory,
    default_jobs,
    due_jobs,
    slot_start,
)

JOBS = default_jobs()
NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)
DONE_TODAY = JobHistory(last_success=datetime(2026, 12, 7, 3, 1, tzinfo=UTC))
EVERYTHING_DONE = {job.name: DONE_TODAY for job in JOBS}
DAILY_JOBS = tuple(job for job in JOBS if job.name != SHIP_WAL)  # shipping comes due every 2 s


def _job(name: str):  # type: ignore[no-untyped-def]
    return next(job for job in JOBS if job.name == name)


def test_a_first_start_runs_every_job_at_once_in_order() -> None:
    assert due_jobs(JOBS, {}, NOW) == [
        Due(ARCHIVING, "WAL archiving on the primary is not in place: setting it up"),
        Due(SHIP_WAL, "WAL shipping never ran: running now"),
        Due(REALTIME_BACKUP, "the realtime base backup never ran: running now"),
        Due(DAILY_BACKUP, "daily backups of every domain never ran: running now"),
        Due(RETENTION, "retention never ran: running now"),
    ]


def test_nothing_is_due_when_every_job_ran_in_its_slot() -> None:
    assert due_jobs(DAILY_JOBS, EVERYTHING_DONE, NOW) == []


def test_a_slot_missed_while_the_watch_was_down_is_caught_up_once_at_start() -> None:
    yesterday = JobHistory(last_success=datetime(2026, 12, 5, 2, 0, 5, tzinfo=UTC))
    history = {**EVERYTHING_DONE, DAILY_BACKUP: yesterday}
    assert due_jobs(DAILY_JOBS, history, NOW) == [
        Due(
            DAILY_BACKUP,
            "daily backups of every domain last ran at 2026-12-05 02:00:05 UTC, before the slot of "
            "2026-12-07 02:00:00 UTC: catching up",
        )
    ]
    caught_up = {**history, DAILY_BACKUP: JobHistory(last_success=NOW)}
    assert due_jobs(DAILY_JOBS, caught_up, NOW + timedelta(minutes=1)) == []


def test_a_job_comes_due_in_its_own_slot() -> None:
    at_slot = datetime(2026, 12, 8, 2, 0, 30, tzinfo=UTC)
    assert due_jobs(DAILY_JOBS, EVERYTHING_DONE, at_slot) == [
        Due(
            REALTIME_BACKUP,
            "the realtime base backup last ran at 2026-12-07 03:01:00 UTC, before the slot "
            "of 2026-12-08 01:00:00 UTC: catching up",
        ),
        Due(DAILY_BACKUP, "daily backups of every domain is due in the slot of 2026-12-08 02:00:00 UTC"),
    ]


def test_a_failed_job_waits_its_retry_then_says_why_it_runs_again() -> None:
    failed = JobHistory(
        last_success=datetime(2026, 12, 6, 2, 0, tzinfo=UTC),
        last_attempt=NOW - timedelta(minutes=2),
        last_error="the primary database does not answer",
    )
    history = {**EVERYTHING_DONE, DAILY_BACKUP: failed}
    assert due_jobs(DAILY_JOBS, history, NOW) == []
    assert due_jobs(DAILY_JOBS, history, NOW + timedelta(minutes=3)) == [
        Due(
            DAILY_BACKUP,
            "daily backups of every domain last ran at 2026-12-06 02:00:00 UTC, before the slot of "
            "2026-12-07 02:00:00 UTC: catching up (the last attempt failed: the primary database does not "
            "answer)",
        )
    ]


def test_shipping_is_due_every_few_seconds() -> None:
    shipped = {**EVERYTHING_DONE, SHIP_WAL: JobHistory(last_success=NOW)}
    assert due_jobs(JOBS, shipped, NOW + timedelta(seconds=1)) == []
    assert due_jobs(JOBS, shipped, NOW + timedelta(seconds=2)) == [
        Due(SHIP_WAL, "WAL shipping is due in the slot of 2026-12-07 09:30:02 UTC")
    ]


def test_archiving_found_off_is_set_up_again() -> None:
    history = {**EVERYTHING_DONE, ARCHIVING: JobHistory()}
    assert due_jobs(DAILY_JOBS, history, NOW) == [
        Due(ARCHIVING, "WAL archiving on the primary is not in place: setting it up")
    ]


def test_slots_are_counted_from_midnight_utc_plus_the_jobs_offset() -> None:
    daily = _job(DAILY_BACKUP)
    assert slot_start(daily, datetime(2026, 12, 7, 1, 59, tzinfo=UTC)) == datetime(2026, 12, 6, 2, tzinfo=UTC)
    assert slot_start(daily, datetime(2026, 12, 7, 2, 0, tzinfo=UTC)) == datetime(2026, 12, 7, 2, tzinfo=UTC)
    ship = _job(SHIP_WAL)
    assert slot_start(ship, datetime(2026, 12, 7, 0, 0, 3, tzinfo=UTC)) == datetime(
        2026, 12, 7, 0, 0, 2, tzinfo=UTC
    )
