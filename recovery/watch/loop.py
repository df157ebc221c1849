"""The watch's loop, the I/O edge: probe, publish, decide, tell, act; the schedule runs beside it.

Each cycle (the target's `watch.interval_seconds`, default 1 s) probes the front door, each site's
service and database; every few seconds the WAL spool and the runs left inside a fence; every
`freshness_every` seconds the backup catalog. The pure parts judge it (`cycle.readings`, `decide.decide`,
`cycle.notices`); samples go to the Prometheus endpoint every cycle and to CloudWatch every
`publish_every` seconds. Nothing a probe meets (a database, SSH or the AWS endpoint gone) stops the loop:
it is a failed probe, a reading, a line in the status file.

`state_dir/watch/status.json` says what the last cycle saw and decided, whether the first round of the
schedule is done, and where the Prometheus endpoint listens (`lab status` and `lab up` read it).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recovery.backup.catalog import Catalog, CatalogEntry, catalog_for
from recovery.backup.naming import DOMAINS, Domain, Kind, kinds_of
from recovery.drivers.aws import AwsDriver
from recovery.engine.interrupted import target_open_fences
from recovery.engine.journal import is_running, journal_path
from recovery.engine.lock import lock_path, read_holder
from recovery.errors import ExternalFailure, RecoveryError
from recovery.notify import Notifier
from recovery.targets.model import SiteName, Target
from recovery.watch import act
from recovery.watch import metrics_contract as contract
from recovery.watch.cycle import BackupAge, Memory, Snapshot, notices, readings, samples
from recovery.watch.decide import (
    Interrupted,
    LockHolder,
    Observations,
    Policy,
    ProbeStreak,
    WatchDecision,
    decide,
)
from recovery.watch.jobs import JobRunner
from recovery.watch.probes import (
    DatabaseProbe,
    HttpProbe,
    Position,
    SpoolProbe,
    probe_database,
    probe_http,
    probe_spool,
    replication_lag,
)
from recovery.watch.publish import CloudWatchPublisher, PrometheusEndpoint, Sample
from recovery.watch.schedule import default_jobs

WATCH_DIR = Path("watch")
STATUS_FILE = WATCH_DIR / "status.json"
HISTORY_FILE = WATCH_DIR / "schedule.json"
FAILOVER_LOG = WATCH_DIR / "failover.log"


def status_path(target: Target) -> Path:
    return target.state_dir / STATUS_FILE


def read_status(target_state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((target_state_dir / STATUS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class WatchOptions:
    target_ref: str  # how commands in messages name the target
    publish_every: float = contract.PUBLISH_INTERVAL_SECONDS
    freshness_every: float = 15.0
    spool_every: float = 5.0
    ship_every: float = 2.0
    prometheus: tuple[str, int] | None = None
    schedule: bool = True
    cloudwatch: bool = True
    window: int = 20  # front door probes kept for the error rate and the latency percentile


@dataclass
class _Tracked:
    """What the loop carries from one cycle to the next."""

    writer: SiteName = "primary"
    down_since: float | None = None
    failures: int = 0
    positions: deque[Position] = field(default_factory=lambda: deque(maxlen=600))
    front_door: deque[tuple[bool, float]] = field(default_factory=lambda: deque(maxlen=20))
    memory: Memory = field(default_factory=Memory)
    spool: SpoolProbe | None = None
    spool_at: float = float("-inf")
    fences: tuple[Interrupted, ...] = ()
    backups: tuple[tuple[Domain, Kind, datetime | None, str | None], ...] = ()
    backups_at: float = float("-inf")
    published_at: float = float("-inf")
    covered_at: datetime | None = None
    failover_started: int | None = None
    verified: set[str] = field(default_factory=set)
    problems: dict[str, str] = field(default_factory=dict)


class Watch:
    def __init__(
        self,
        target: Target,
        options: WatchOptions,
        *,
        notifier: Notifier | None = None,
        start_failover: Callable[[str, Path], act.Started] = act.start_failover,
    ) -> None:
        self.target = target
        self.options = options
        self.notifier = notifier or Notifier(target)
        self.start_failover = start_failover
        self.policy = Policy(
            failures_to_act=target.watch.failures_to_act,
            seconds_to_act=target.watch.seconds_to_act,
            automatic_failover=target.watch.automatic_failover,
        )
        self.started_at = datetime.now(UTC)
        self.started_monotonic = time.monotonic()
        self.cycles = 0
        self.tracked = _Tracked(front_door=deque(maxlen=options.window))
        self.last_decision: WatchDecision | None = None
        self.last_snapshot: Snapshot | None = None
        self.prometheus = PrometheusEndpoint()
        self.prometheus_port: int | None = None
        driver = AwsDriver(target.aws, attempts=2, connect_timeout=2, read_timeout=10)
        self._aws = driver
        self.cloudwatch = CloudWatchPublisher(
            driver, {"primary": target.primary.region, "standby": target.standby.region}
        )
        self.jobs = JobRunner(
            target,
            default_jobs(timedelta(seconds=options.ship_every)),
            target.state_dir / HISTORY_FILE,
            (self.notifier,),
        )
        self._catalog: Catalog | None = None
        self._slow_in_background = False

    # -- observing ------------------------------------------------------------------------------------
    def _http(self) -> tuple[HttpProbe, ...]:
        found = [probe_http("front-door", self.tracked.writer, self.target.traffic.front_door_url)]
        for site in (self.target.primary, self.target.standby):
            for host in site.hosts:
                found.append(probe_http("service", site.name, f"http://{host.address}:{host.service_port}"))
        return tuple(found)

    def _databases(self) -> tuple[DatabaseProbe, ...]:
        return tuple(
            probe_database(site.name, site.database) for site in (self.target.primary, self.target.standby)
        )

    def _lock_holder(self) -> LockHolder | None:
        holder = read_holder(lock_path(self.target.state_dir, self.target.name))
        if holder is None or not is_running(journal_path(self.target.state_dir, holder.run_id)):
            return None
        return LockHolder(holder.run_id, holder.runbook)

    def _fences(self) -> tuple[Interrupted, ...]:
        return tuple(
            Interrupted(found.run_id, found.runbook, found.last_step)
            for found in target_open_fences(self.target.state_dir)
        )

    def _catalog_backups(self) -> tuple[tuple[Domain, Kind, datetime | None, str | None], ...]:
        """The newest backup that counts of each domain and kind (each verified once: sha256 of both copies
        against the manifest), listed again every `freshness_every` seconds."""
        if self._catalog is None:
            self._catalog = catalog_for(self.target, self._aws, with_keys=False)
        catalog = self._catalog
        by_key: dict[tuple[Domain, Kind], list[CatalogEntry]] = {}
        for entry in catalog.entries():
            if entry.position is not None:
                by_key.setdefault((entry.domain, entry.kind), []).append(entry)
        found: list[tuple[Domain, Kind, datetime | None, str | None]] = []
        for domain in DOMAINS:
            for kind in kinds_of(domain):
                newest: CatalogEntry | None = None
                listed = by_key.get((domain, kind), [])
                for entry in sorted(listed, key=lambda e: (e.position, e.backup_id), reverse=True):
                    if entry.backup_id in self.tracked.verified or catalog.verify(entry.backup_id).counts:
                        self.tracked.verified.add(entry.backup_id)
                        newest = entry
                        break
                found.append(
                    (domain, kind, newest.position if newest else None, newest.backup_id if newest else None)
                )
        if catalog.unreachable:
            # The catalog remembers a store that did not answer; a new one asks it again next time. Until
            # then the ages already known keep growing, and the outage is reported.
            self._catalog = None
            down = "; ".join(f"{label} copy: {why}" for label, why in sorted(catalog.unreachable.items()))
            raise ExternalFailure(f"a backup store does not answer ({down}); backups cannot be counted")
        return tuple(found)

    def _ages(self, now: datetime) -> tuple[BackupAge, ...]:
        out = []
        since_start = (now - self.started_at).total_seconds()
        for domain, kind, position, backup_id in self.tracked.backups:
            if position is None:
                out.append(BackupAge(domain, kind, since_start, None))
                continue
            reaches = position
            covered = self.tracked.covered_at
            if kind == "realtime" and covered is not None and covered > reaches:
                reaches = covered  # WAL shipped since the base backup carries it forward
            out.append(BackupAge(domain, kind, max((now - reaches).total_seconds(), 0.0), backup_id))
        return tuple(out)

    def observe(self) -> Snapshot:
        mono = time.monotonic()
        now = datetime.now(UTC)
        tracked = self.tracked
        http = self._http()
        databases = self._databases()
        roles = {probe.site: probe.role for probe in databases if probe.ok}
        if roles.get(tracked.writer) != "primary":
            tracked.writer = next((site for site, role in roles.items() if role == "primary"), tracked.writer)
        writer = next(probe for probe in databases if probe.site == tracked.writer)
        if writer.ok:
            tracked.failures, tracked.down_since = 0, None
        else:
            tracked.failures += 1
            tracked.down_since = tracked.down_since if tracked.down_since is not None else mono
        lag_bytes = lag_seconds = None
        standby = next((p for p in databases if p.site != tracked.writer), None)
        if writer.ok and writer.lsn is not None:
            if not tracked.positions or tracked.positions[-1].lsn != writer.lsn:
                tracked.positions.append(Position(mono, writer.lsn))
            if standby is not None and standby.ok and standby.role == "standby" and standby.lsn is not None:
                lag_bytes, lag_seconds = replication_lag(tuple(tracked.positions), standby.lsn, mono)
                while len(tracked.positions) > 1 and tracked.positions[0].lsn <= standby.lsn:
                    tracked.positions.popleft()
        front = next(probe for probe in http if probe.probe == "front-door")
        tracked.front_door.append((front.ok, front.latency_ms))
        if not self._slow_in_background:
            self.slow_probes()
        shipped = self.jobs.shipped_at
        if shipped is not None and not writer.archiver_failing and writer.ok:
            tracked.covered_at = max(tracked.covered_at or shipped, shipped)
        ok = [latency for passed, latency in tracked.front_door if passed]
        failed = sum(1 for passed, _ in tracked.front_door if not passed)
        p95 = sorted(ok)[int(0.95 * (len(ok) - 1))] if ok else 0.0
        problems = list(tracked.problems.values())
        if tracked.spool is not None and not tracked.spool.ok and tracked.spool.problem:
            problems.append(tracked.spool.problem)
        problems += [p.problem for p in http if p.problem] + [p.problem for p in databases if p.problem]
        return Snapshot(
            target=self.options.target_ref,
            writer=tracked.writer,
            http=http,
            databases=databases,
            spool=tracked.spool,
            backups=self._ages(now),
            lag_bytes=lag_bytes,
            lag_seconds=lag_seconds,
            error_rate=failed / len(tracked.front_door),
            latency_ms=p95,
            problems=tuple(problems),
        )

    def slow_probes(self) -> None:
        """The probes that may take seconds (SSH to the spool, the runs' journals, the backup catalog over
        S3), each when its interval is up. `run` calls this from a thread of its own, so an SSH or AWS
        outage never delays the database probes the failover decision rests on."""
        tracked, mono = self.tracked, time.monotonic()
        if mono - tracked.spool_at >= self.options.spool_every:
            tracked.spool_at = mono
            tracked.spool = probe_spool(self.target)
            self._guard("runs", lambda: setattr(tracked, "fences", self._fences()))
        if mono - tracked.backups_at >= self.options.freshness_every:
            tracked.backups_at = mono
            self._guard("backups", lambda: setattr(tracked, "backups", self._catalog_backups()))

    def _slow_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.slow_probes()
            stop.wait(0.5)

    def _guard(self, what: str, fn: Callable[[], None]) -> None:
        """Run one probe that may meet an outage; its failure is a reported problem, not a crash."""
        try:
            fn()
        except RecoveryError as error:
            self.tracked.problems[what] = f"{what}: {error.message}"
            self._catalog = None
        except Exception as error:  # an endpoint gone mid-call: report, retry next time
            self.tracked.problems[what] = f"{what}: {type(error).__name__}: {error}".splitlines()[0]
            self._catalog = None
        else:
            self.tracked.problems.pop(what, None)

    # -- one cycle --------------------------------------------------------------------------------------
    def cycle(self) -> WatchDecision:
        snapshot = self.observe()
        tracked = self.tracked
        streak = ProbeStreak(
            tracked.failures,
            0.0 if tracked.down_since is None else time.monotonic() - tracked.down_since,
        )
        every = readings(snapshot, self.target.objectives)
        observed = Observations(
            self.options.target_ref,
            streak,
            every,
            lock=self._lock_holder(),
            interrupted_in_fence=tracked.fences[0] if tracked.fences else None,
        )
        decision = decide(observed, self.policy)
        at = datetime.now(UTC).isoformat(timespec="seconds")
        owed, tracked.memory = notices(
            decision,
            every,
            tracked.memory,
            at=at,
            cycles_to_alarm=self.policy.failures_to_act,
            failover_command=act.failover_command(self.options.target_ref),
        )
        for notice in owed:
            # The subject names the target as the runbooks' messages do; commands name it as it was given.
            self.notifier.send(notice.event, {"target": self.target.name, **notice.fields})
        if decision.action == "failover":
            if tracked.failover_started is None:
                started = self.start_failover(self.options.target_ref, self.target.state_dir / FAILOVER_LOG)
                tracked.failover_started = started.pid
        else:
            tracked.failover_started = None
        self._publish(samples(snapshot))
        self.cycles += 1
        self.last_decision, self.last_snapshot = decision, snapshot
        self._write_status(decision, snapshot)
        return decision

    def _publish(self, figures: list[Sample]) -> None:
        self.prometheus.update(figures)
        mono = time.monotonic()
        if not self.options.cloudwatch or mono - self.tracked.published_at < self.options.publish_every:
            return
        self.tracked.published_at = mono
        self._guard("cloudwatch", lambda: _ignore(self.cloudwatch.publish(figures, datetime.now(UTC))))

    def _write_status(self, decision: WatchDecision, snapshot: Snapshot) -> None:
        history = self.jobs.snapshot()
        doc = {
            "pid": os.getpid(),
            "target": self.options.target_ref,
            "started_at": self.started_at.isoformat(),
            "cycle_at": datetime.now(UTC).isoformat(),
            "cycles": self.cycles,
            "decision": {"action": decision.action, "reason": decision.reason},
            "writer": snapshot.writer,
            "problems": list(snapshot.problems),
            "prometheus_port": self.prometheus_port,
            "first_round_done": self.jobs.first_round_done.is_set() or not self.options.schedule,
            "running_job": self.jobs.running,
            "schedule": {
                name: {k: v.isoformat() if isinstance(v, datetime) else v for k, v in asdict(item).items()}
                for name, item in history.items()
            },
        }
        path = status_path(self.target)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(path)

    # -- running ----------------------------------------------------------------------------------------
    def run(self, stop: threading.Event, cycles: int | None = None) -> None:
        """Cycle until `stop` is set (or `cycles` cycles ran); the schedule runs in a thread beside."""
        if self.options.prometheus is not None:
            self.prometheus_port = self.prometheus.start(*self.options.prometheus)
        self._slow_in_background = True
        slow = threading.Thread(target=self._slow_loop, args=(stop,), name="watch-slow-probes", daemon=True)
        slow.start()
        worker: threading.Thread | None = None
        if self.options.schedule:
            worker = threading.Thread(target=self.jobs.run, args=(stop,), name="watch-schedule", daemon=True)
            worker.start()
        interval = self.target.watch.interval_seconds
        try:
            while not stop.is_set() and (cycles is None or self.cycles < cycles):
                began = time.monotonic()
                self.cycle()
                stop.wait(max(interval - (time.monotonic() - began), 0.05))
        finally:
            stop.set()
            self.prometheus.stop()
            if worker is not None:
                with contextlib.suppress(RuntimeError):
                    worker.join(timeout=30)


def _ignore(_: object) -> None:
    """Adapts a call whose result is not needed to `_guard`."""
