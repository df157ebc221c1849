"""The watch's scheduled jobs, run one at a time in a thread of their own so that a backup taking minutes
never delays a probe: archiving set up, WAL shipped, the realtime base backup, the daily backups,
retention. Every job but shipping is a runbook run through the engine (journaled, under the target's
lock, announced to the team like any run); a job refused because a person's run holds the lock is tried
again after its retry delay.

The history of each job (last success, last attempt, last error) is kept in `state_dir/watch/
schedule.json`, so a restarted watch knows what it missed; the backups' own times come from the catalog
at start, so a watch on a new controller does not take a second backup of a day that has one.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from recovery.backup.catalog import CopyState, catalog_for
from recovery.backup.naming import DOMAINS, Kind, kinds_of
from recovery.backup.prune import plan_prune
from recovery.backup.realtime import RealtimeStores, realtime_stores, ship_wal, switch_and_wait_archived
from recovery.backup.retention import RetentionPolicy
from recovery.engine import Engine, Runbook, Subscriber
from recovery.errors import RecoveryError
from recovery.runbooks.backup import backup_params, backup_runbook, prune_params, prune_runbook
from recovery.runbooks.realtime_backup import archiving_on, realtime_runbook, wal_archive_runbook
from recovery.targets.model import Target
from recovery.watch.schedule import (
    ARCHIVING,
    DAILY_BACKUP,
    REALTIME_BACKUP,
    RETENTION,
    SHIP_WAL,
    Job,
    JobHistory,
    due_jobs,
)

# A keepalive switch waits this long for its segment to be archived; archiving that fails is the
# archiver's alarm, and the next round tries again.
SWITCH_TIMEOUT_SECONDS = 10


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def read_history(path: Path) -> dict[str, JobHistory]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {
        name: JobHistory(
            _parse(item.get("last_success")), _parse(item.get("last_attempt")), item.get("last_error")
        )
        for name, item in data.items()
        if isinstance(item, dict)
    }


def write_history(path: Path, history: Mapping[str, JobHistory]) -> None:
    def encode(item: JobHistory) -> dict[str, str | None]:
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(item).items()}

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({name: encode(item) for name, item in history.items()}, indent=2) + "\n")
    tmp.replace(path)


def backups_taken(target: Target) -> dict[str, datetime | None]:
    """When each backup job last produced a backup of every domain it covers (both copies present): the
    oldest of the domains' newest. None when a domain has none."""
    entries = catalog_for(target, with_keys=False).entries()
    newest: dict[tuple[str, Kind], datetime] = {}
    for entry in entries:
        present = entry.local.state is not CopyState.MISSING and entry.remote.state is not CopyState.MISSING
        if entry.position is None or not present:
            continue
        key = (entry.domain, entry.kind)
        newest[key] = max(newest.get(key, entry.position), entry.position)

    def oldest_of(kind: Kind) -> datetime | None:
        times = [newest.get((domain, kind)) for domain in DOMAINS if kind in kinds_of(domain)]
        return None if any(t is None for t in times) else min(t for t in times if t is not None)

    return {DAILY_BACKUP: oldest_of("daily"), REALTIME_BACKUP: oldest_of("realtime")}


class JobRunner:
    """Runs the due jobs of the schedule in its own thread."""

    def __init__(
        self,
        target: Target,
        jobs: tuple[Job, ...],
        history_path: Path,
        subscribers: tuple[Subscriber, ...] = (),
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.target = target
        self.jobs = jobs
        self.path = history_path
        self.subscribers = subscribers
        self.clock = clock
        self.history: dict[str, JobHistory] = read_history(history_path)
        self.shipped_at: datetime | None = None  # start of the last round that left the spool shipped
        self.segment_at: datetime | None = None  # the newest closed segment this watch saw shipped
        self.first_round_done = threading.Event()
        self.running: str | None = None  # the job in hand, shipping aside
        self._stores: RealtimeStores | None = None
        self._lock = threading.Lock()
        self._ship_lock = threading.Lock()

    # -- the facts a restarted watch starts from --------------------------------------------------------
    def seed(self) -> None:
        """Backups' times from the catalog, archiving from the database; problems leave the history as it
        was (the jobs then run and report them)."""
        with contextlib.suppress(Exception):  # the catalog unreachable: the history file stands
            for job, taken in backups_taken(self.target).items():
                self._set(job, last_success=taken)
        try:
            on = archiving_on(self.target)
        except Exception:  # the database down at start: archiving is checked by its job
            return
        self._set(ARCHIVING, last_success=self.clock() if on else None)

    def _set(self, job: str, **changes: object) -> None:
        with self._lock:
            self.history[job] = replace(self.history.get(job, JobHistory()), **changes)  # type: ignore[arg-type]
            write_history(self.path, self.history)

    def snapshot(self) -> dict[str, JobHistory]:
        with self._lock:
            return dict(self.history)

    # -- running ----------------------------------------------------------------------------------------
    def run(self, stop: threading.Event, tick: float = 0.5) -> None:
        """The jobs one after the other in this thread; shipping in a thread of its own, so that a daily
        backup taking minutes never stops the WAL from leaving the host."""
        self.seed()
        shipper = threading.Thread(target=self._ship_loop, args=(stop, tick), name="watch-ship", daemon=True)
        shipper.start()
        first = {due.job for due in due_jobs(self.jobs, self.snapshot(), self.clock())} - {SHIP_WAL}
        while not stop.is_set():
            for item in due_jobs(self.jobs, self.snapshot(), self.clock()):
                if stop.is_set():
                    break
                if item.job == SHIP_WAL:
                    continue
                if item.job == REALTIME_BACKUP:
                    # The base backup ships its own end: the shipper waits, so two never share a spool.
                    with self._ship_lock:
                        self.run_job(item.job)
                else:
                    self.run_job(item.job)
                first.discard(item.job)
            if not first:
                self.first_round_done.set()
            stop.wait(tick)
        shipper.join(timeout=30)

    def _ship_loop(self, stop: threading.Event, tick: float) -> None:
        while not stop.is_set():
            if any(item.job == SHIP_WAL for item in due_jobs(self.jobs, self.snapshot(), self.clock())):
                with self._ship_lock:
                    self.run_job(SHIP_WAL)
            stop.wait(tick)

    def run_job(self, job: str) -> None:
        started = self.clock()
        self._set(job, last_attempt=started)
        if job != SHIP_WAL:
            self.running = job
        try:
            self._do(job, started)
        except RecoveryError as error:
            self._set(job, last_error=error.message)
        except Exception as error:  # a job's bug must not stop the watch: recorded, retried
            self._set(job, last_error=f"{type(error).__name__}: {error}".splitlines()[0])
        else:
            self._set(job, last_success=started, last_error=None)
        finally:
            if job != SHIP_WAL:
                self.running = None

    def _ship(self, started: datetime) -> None:
        """Ship the spool; when no segment was closed for half the realtime objective (an idle primary:
        archive_timeout switches only after writes), close one, so the shipped WAL provably reaches now
        and a realtime backup stays recoverable to the present (an empty switched segment compresses to
        almost nothing)."""
        if self._stores is None:
            self._stores = realtime_stores(self.target)
        report = ship_wal(self.target, stores=self._stores)
        written = [item.written_at for item in report.files]
        if written:
            self.segment_at = max([*written, self.segment_at or written[0]])
        keepalive = self.target.objectives.realtime_backup_max_age_seconds / 2
        if self.segment_at is None or (started - self.segment_at).total_seconds() > keepalive:
            switch_and_wait_archived(self.target.writable.database, timeout=SWITCH_TIMEOUT_SECONDS)
            ship_wal(self.target, stores=self._stores)
            self.segment_at = started
        self.shipped_at = started

    def _engine_run(self, runbook: Runbook) -> None:
        Engine(self.target, self.subscribers).run(runbook)

    def _do(self, job: str, started: datetime) -> None:
        target = self.target
        if job == ARCHIVING:
            self._engine_run(wal_archive_runbook(target, {}))
        elif job == SHIP_WAL:
            self._ship(started)
        elif job == REALTIME_BACKUP:
            self._engine_run(realtime_runbook(target, {}))
        elif job == DAILY_BACKUP:
            self._engine_run(backup_runbook(target, backup_params(list(DOMAINS))))
        elif job == RETENTION:
            policy = RetentionPolicy()
            plan = plan_prune(target, policy)
            if plan.doomed_backups or plan.doomed_series:
                self._engine_run(prune_runbook(target, prune_params(policy, plan)))
        else:
            raise ValueError(f"no such job {job!r}")
