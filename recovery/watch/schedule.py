"""The watch's schedule: which jobs are due now, and the sentence that says why. Pure.

Each job has slots: the times `at + k * every` (UTC, counted from midnight). A job is due when its last
success is before the current slot's start, so a slot missed while the watch was down is caught up as
soon as it starts again, once (not once per missed slot). A job that failed waits `retry` before its next
attempt. A job without a period (`every` None) is due whenever it has never succeeded: setting up WAL
archiving, whose "success" the watch reads from the database each time it starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ARCHIVING = "archiving"
SHIP_WAL = "ship-wal"
REALTIME_BACKUP = "realtime-backup"
DAILY_BACKUP = "daily-backup"
RETENTION = "retention"
CATCH_UP_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class Job:
    name: str
    what: str  # "daily backups of every domain": the subject of the reason sentence
    every: timedelta | None
    at: timedelta = timedelta(0)  # offset of the slots from midnight UTC
    retry: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class JobHistory:
    last_success: datetime | None = None
    last_attempt: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class Due:
    job: str
    reason: str


def default_jobs(ship_every: timedelta = timedelta(seconds=2)) -> tuple[Job, ...]:
    """The schedule of the recovery plan (ch. 4.1.2): archiving on, WAL shipped continuously, a realtime
    base backup and daily backups of every domain each day, then retention."""
    day = timedelta(days=1)
    return (
        Job(ARCHIVING, "WAL archiving on the primary", None, retry=timedelta(minutes=1)),
        Job(SHIP_WAL, "WAL shipping", ship_every, retry=ship_every),
        Job(REALTIME_BACKUP, "the realtime base backup", day, at=timedelta(hours=1)),
        Job(DAILY_BACKUP, "daily backups of every domain", day, at=timedelta(hours=2)),
        Job(RETENTION, "retention", day, at=timedelta(hours=3)),
    )


def slot_start(job: Job, now: datetime) -> datetime:
    """The start of the slot `now` falls in (for a job with a period)."""
    assert job.every is not None
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first = midnight + job.at
    if first > now:
        first -= timedelta(days=1)
    slots = (now - first) // job.every
    return first + slots * job.every


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _is_due(job: Job, history: JobHistory, now: datetime) -> str | None:
    attempt = history.last_attempt
    failed_since = attempt is not None and (history.last_success is None or attempt > history.last_success)
    if failed_since and attempt is not None and now - attempt < job.retry:
        return None
    retrying = (
        f" (the last attempt failed: {history.last_error})" if failed_since and history.last_error else ""
    )
    if job.every is None:
        if history.last_success is not None:
            return None
        return f"{job.what} is not in place: setting it up{retrying}"
    if history.last_success is None:
        return f"{job.what} never ran: running now{retrying}"
    start = slot_start(job, now)
    if history.last_success >= start:
        return None
    # Well past the slot's start: the watch was down (or the job kept failing) when it came.
    if now - start > min(job.every / 2, CATCH_UP_AFTER):
        return (
            f"{job.what} last ran at {_when(history.last_success)}, before the slot of {_when(start)}: "
            f"catching up{retrying}"
        )
    return f"{job.what} is due in the slot of {_when(start)}{retrying}"


def due_jobs(jobs: Sequence[Job], history: Mapping[str, JobHistory], now: datetime) -> list[Due]:
    """The jobs to run now, in the schedule's order, each with the sentence that says why."""
    found: list[Due] = []
    for job in jobs:
        reason = _is_due(job, history.get(job.name, JobHistory()), now)
        if reason is not None:
            found.append(Due(job.name, reason))
    return found
