"""Preflight: may this release be deployed on this target? Observe everything, then decide (pure).

Every check has a name, a subject (a host, a site, a store, a domain) and a status with a one-line
reason. Observation gathers frozen facts (over SSH, PostgreSQL, S3 and a migration dry run); the
`decide_*` functions turn facts into checks without I/O. Any failing check refuses the release before
anything changes; the dry run's scratch database is made only when every other check passed, so a
refused release leaves the target exactly as it was.

Backups that are missing or too old fail `backups_fresh`, unless the caller will take a restore point of
every domain before it changes anything (`restore_point_pending`: the upgrade runbook does), in which
case the check passes and says why. docs/preflight-and-gates.md lists the checks.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from recovery.backup.catalog import CatalogEntry
from recovery.backup.freshness import limit_seconds, reaches, stale_backups
from recovery.backup.naming import DOMAINS, kinds_of
from recovery.drivers import db
from recovery.errors import PreconditionFailed, RecoveryError, UsageError
from recovery.release.catalog import Release, Requirements
from recovery.release.preflight_checks.backups import BackupFacts, observe_backups
from recovery.release.preflight_checks.dry_run import DEFAULT_SAMPLE_ORDERS, DryRunFacts, dry_run_migrations
from recovery.release.preflight_checks.hosts import HostFacts, observe_host
from recovery.release.preflight_checks.rds import RDS_CHECK_NAMES, RdsFacts, decide_rds, observe_rds
from recovery.targets.model import Objectives, SiteName, Target

Status = Literal["pass", "fail", "skip"]
CHECK_NAMES: tuple[str, ...] = (
    "ssh",
    "python",
    "disk",
    "memory",
    "service_port",
    "connectivity",
    "postgres_version",
    "replication",
    "backup_store",
    "backups_fresh",
    "migration_dry_run",
    *RDS_CHECK_NAMES,
)


@dataclass(frozen=True)
class PreflightCheck:
    name: str
    subject: str
    status: Status
    reason: str


@dataclass(frozen=True)
class PreflightOptions:
    restore_point_pending: bool = False  # a restore point of every domain is taken before any change
    skip: frozenset[str] = frozenset()  # check names to skip (reported as skipped, never as passed)
    sample_orders: int = DEFAULT_SAMPLE_ORDERS  # orders copied into the dry run's scratch database

    def __post_init__(self) -> None:
        unknown = sorted(self.skip - set(CHECK_NAMES))
        if unknown:
            raise UsageError(f"unknown preflight check {unknown[0]!r}; checks are: {', '.join(CHECK_NAMES)}")
        if not 1 <= self.sample_orders <= 1_000_000:
            raise UsageError("the dry run's sample must be between 1 and 1,000,000 orders")


@dataclass(frozen=True)
class PreflightReport:
    release: str
    target: str
    checks: tuple[PreflightCheck, ...]
    seconds: float = 0.0

    @property
    def failures(self) -> tuple[PreflightCheck, ...]:
        return tuple(c for c in self.checks if c.status == "fail")

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "target": self.target,
            "passed": self.passed,
            "seconds": round(self.seconds, 3),
            "checks": [c.__dict__ for c in self.checks],
        }


# -- facts gathered together -----------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseFacts:
    site: SiteName
    endpoint: str
    major: int | None
    problem: str | None = None


@dataclass(frozen=True)
class ReplicationFacts:
    streaming: tuple[tuple[str, str, float], ...]  # (standby name, state, lag seconds) as the primary sees
    problem: str | None = None


@dataclass(frozen=True)
class PreflightFacts:
    hosts: tuple[HostFacts, ...]
    databases: tuple[DatabaseFacts, ...]
    replication: ReplicationFacts
    backups: BackupFacts
    dry_run: DryRunFacts | None = None  # None: not run
    extra: dict[str, str] = field(default_factory=dict)
    rds: tuple[RdsFacts, ...] = ()  # the sites whose database is on RDS


# -- pure decisions --------------------------------------------------------------------------------


def _check(name: str, subject: str, ok: bool, reason: str) -> PreflightCheck:
    return PreflightCheck(name, subject, "pass" if ok else "fail", reason)


def decide_host(facts: HostFacts, requires: Requirements) -> list[PreflightCheck]:
    """The checks of one host: reachable, Python, disk, memory, service port, connectivity. Pure."""
    subject = facts.host
    if not facts.reachable:
        return [_check("ssh", subject, False, f"cannot observe host {subject}: {facts.problem}")]
    assert facts.python is not None and facts.disk_free_mb is not None
    checks = [_check("ssh", subject, True, f"host {subject} answers over SSH")]
    have, need = facts.python[:2], requires.python_min_tuple()
    version = ".".join(map(str, facts.python))
    checks.append(
        _check(
            "python",
            subject,
            have >= need,
            f"Python {version} on the host, the release needs {requires.python_min} or newer"
            + ("" if have >= need else "; install a newer Python on the host"),
        )
    )
    checks.append(
        _check(
            "disk",
            subject,
            facts.disk_free_mb >= requires.disk_free_mb,
            f"{facts.disk_free_mb} MB free under {facts.disk_path}, "
            f"the release needs {requires.disk_free_mb} MB",
        )
    )
    if facts.memory_mb is None:
        checks.append(_check("memory", subject, False, "cannot read the available memory (/proc/meminfo)"))
    else:
        checks.append(
            _check(
                "memory",
                subject,
                facts.memory_mb >= requires.memory_mb,
                f"{facts.memory_mb} MB memory available, the release needs {requires.memory_mb} MB",
            )
        )
    if "service" in requires.ports:
        port = facts.service_port
        if facts.port_state == "free":
            checks.append(_check("service_port", subject, True, f"port {port} is free"))
        elif facts.port_state == "ours":
            checks.append(
                _check(
                    "service_port",
                    subject,
                    True,
                    f"port {port} is held by the order service (release {facts.port_detail}), "
                    "which the deploy restarts",
                )
            )
        else:
            checks.append(
                _check(
                    "service_port",
                    subject,
                    False,
                    f"port {port} is held by another program "
                    f"({facts.port_detail or 'not the order service'}); "
                    "stop it or give the host another service_port",
                )
            )
    if facts.unreachable:
        name, why = facts.unreachable[0]
        more = f" (and {len(facts.unreachable) - 1} more)" if len(facts.unreachable) > 1 else ""
        checks.append(_check("connectivity", subject, False, f"cannot connect to the {name}: {why}{more}"))
    else:
        checks.append(
            _check("connectivity", subject, True, f"reaches {', '.join(facts.reached) or 'nothing to'}")
        )
    return checks


def decide_postgres(facts: DatabaseFacts, requires: Requirements) -> PreflightCheck:
    subject = f"{facts.site} database"
    if facts.major is None:
        return _check("postgres_version", subject, False, f"cannot ask {facts.endpoint}: {facts.problem}")
    ok = facts.major >= requires.postgres_min_major
    return _check(
        "postgres_version",
        subject,
        ok,
        f"PostgreSQL {facts.major} at {facts.endpoint}, "
        f"the release needs {requires.postgres_min_major} or newer"
        + ("" if ok else "; upgrade the database server first or deploy another release"),
    )


def decide_replication(facts: ReplicationFacts, objectives: Objectives) -> PreflightCheck:
    limit = objectives.replication_lag_max_seconds
    if facts.problem is not None:
        return _check(
            "replication", "standby", False, f"cannot read replication from the primary: {facts.problem}"
        )
    streaming = [s for s in facts.streaming if s[1] == "streaming"]
    if not streaming:
        return _check(
            "replication",
            "standby",
            False,
            "no standby is streaming from the primary; repair replication before an upgrade",
        )
    name, _, lag = max(streaming, key=lambda s: s[2])
    return _check(
        "replication",
        "standby",
        lag <= limit,
        f"standby {name} streams {lag:.1f} s behind the primary (objective at most {limit:g} s)",
    )


def _age(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 600 else f"{seconds / 3600:.1f} h"


def decide_backups(
    facts: BackupFacts, objectives: Objectives, now: datetime, *, restore_point_pending: bool, target: str
) -> list[PreflightCheck]:
    """One check per backup store and one per (domain, kind). Pure."""
    checks = [
        _check(
            "backup_store",
            store.label,
            store.problem is None,
            f"{store.where} answers" if store.problem is None else f"{store.where}: {store.problem}",
        )
        for store in facts.stores
    ]
    if facts.problem is not None:
        checks.append(
            _check("backups_fresh", "all domains", False, f"cannot read the backup catalog: {facts.problem}")
        )
        return checks
    stale = {(f.domain, f.kind): f for f in stale_backups(facts.entries, objectives, now)}
    # Each kind has its own maker: `backup run` takes daily backups only, never a realtime one.
    makers = {"daily": "recovery backup run", "realtime": "recovery backup realtime"}
    for domain in DOMAINS:
        for kind in kinds_of(domain):
            subject = f"{domain} {kind}"
            finding = stale.get((domain, kind))
            if finding is None:
                newest = _newest_counted(facts.entries, domain, kind)
                assert newest is not None and newest.position is not None
                age = (now - reaches(newest)).total_seconds()
                limit = limit_seconds(kind, objectives)
                checks.append(
                    _check(
                        "backups_fresh",
                        subject,
                        True,
                        f"{newest.backup_id} verified, {_age(age)} old (objective {_age(limit)})",
                    )
                )
            elif restore_point_pending:
                checks.append(
                    _check(
                        "backups_fresh",
                        subject,
                        True,
                        f"{finding.reason}; accepted: a restore point of every domain is taken "
                        "before any change",
                    )
                )
            else:
                fix = (
                    f"make one with `{makers[kind]} --target {target}` "
                    "(or let the upgrade take a restore point: --restore-point-pending)"
                )
                checks.append(_check("backups_fresh", subject, False, f"{finding.reason}; {fix}"))
    return checks


def _newest_counted(entries: Sequence[CatalogEntry], domain: str, kind: str) -> CatalogEntry | None:
    counted = [e for e in entries if e.domain == domain and e.kind == kind and e.counts and e.position]
    return max(counted, key=lambda e: (e.position, e.backup_id)) if counted else None


def decide_dry_run(facts: DryRunFacts | None, release: Release, blocked_by: Sequence[str]) -> PreflightCheck:
    subject = "primary database"
    if facts is None:
        names = ", ".join(sorted(set(blocked_by)))
        return PreflightCheck(
            "migration_dry_run",
            subject,
            "skip",
            f"not run: {names} failed, and the dry run makes a scratch database",
        )
    if not facts.ran:
        return _check("migration_dry_run", subject, False, f"the dry run could not run: {facts.problem}")
    sample = facts.sample_rows.get("orders", 0)
    if facts.ok:
        done = (
            f"migrations {', '.join(facts.applied)} applied"
            if facts.applied
            else f"no migration pending (schema already at {facts.schema_version})"
        )
        return _check(
            "migration_dry_run",
            subject,
            True,
            f"{done} on a scratch copy ({sample} newest orders) in {facts.seconds:.1f} s; "
            f"schema {facts.schema_version}",
        )
    return _check(
        "migration_dry_run",
        subject,
        False,
        f"migration {facts.failed} failed on a scratch copy ({sample} newest orders): "
        f"{release.name}'s migrations would fail on the live database",
    )


def decide_preflight(
    release: Release,
    target: Target,
    facts: PreflightFacts,
    now: datetime,
    options: PreflightOptions,
) -> list[PreflightCheck]:
    """Every check but the dry run, from the facts. Pure."""
    requires = release.requires
    checks: list[PreflightCheck] = []
    for host in facts.hosts:
        checks += decide_host(host, requires)
    checks += [decide_postgres(d, requires) for d in facts.databases]
    checks.append(decide_replication(facts.replication, target.objectives))
    checks += decide_backups(
        facts.backups,
        target.objectives,
        now,
        restore_point_pending=options.restore_point_pending,
        target=target.name,
    )
    for site in facts.rds:
        findings = decide_rds(
            site, postgres_min_major=requires.postgres_min_major, objectives=target.objectives, now=now
        )
        checks += [_check(f.name, f.subject, f.ok, f.reason) for f in findings]
    return [apply_skip(c, options.skip) for c in checks]


def apply_skip(check: PreflightCheck, skip: Collection[str]) -> PreflightCheck:
    if check.name in skip:
        return PreflightCheck(
            check.name, check.subject, "skip", f"skipped on request (observed: {check.reason})"
        )
    return check


def ensure_passed(report: PreflightReport) -> None:
    """Raise PreconditionFailed (exit code REFUSED) naming the first failing check."""
    if report.passed:
        return
    first = report.failures[0]
    others = len(report.failures) - 1
    more = f" (and {others} more failing check{'s' if others != 1 else ''})" if others else ""
    raise PreconditionFailed(
        f"preflight refused {report.release} on {report.target}: "
        f"{first.name} ({first.subject}): {first.reason}"
        f"{more}; nothing was changed",
        code="preflight.refused",
    )


# -- observation -----------------------------------------------------------------------------------


def _observe_database(target: Target, site: SiteName) -> DatabaseFacts:
    database = target.site(site).database
    endpoint = f"{database.address}:{database.port}"
    try:
        return DatabaseFacts(site, endpoint, db.server_major(database))
    except RecoveryError as exc:
        return DatabaseFacts(site, endpoint, None, exc.message)


def _observe_replication(target: Target) -> ReplicationFacts:
    try:
        status = db.replication_status(target.writable.database)
    except RecoveryError as exc:
        return ReplicationFacts((), exc.message)
    if status.role != "primary":
        return ReplicationFacts((), "the primary database is in recovery (it is a standby)")
    return ReplicationFacts(tuple((r.application_name, r.state, r.lag_seconds) for r in status.replicas))


def _endpoints(target: Target, host_name: str) -> list[tuple[str, str, int]]:
    endpoints = [
        ("primary database", target.writable.database.address, target.writable.database.port),
        ("standby database", target.replica.database.address, target.replica.database.port),
    ]
    endpoints += [
        (f"host {h.name} (ssh)", h.address, h.ssh_port) for h in target.hosts() if h.name != host_name
    ]
    return endpoints


def observe(target: Target) -> PreflightFacts:
    hosts = tuple(observe_host(h, _endpoints(target, h.name)) for h in target.hosts())
    databases = tuple(_observe_database(target, site) for site in ("primary", "standby"))
    backups = observe_backups(target)
    return PreflightFacts(
        hosts, databases, _observe_replication(target), backups, rds=observe_rds(target, backups.observed_at)
    )


def run_preflight(
    target: Target, release: Release, options: PreflightOptions | None = None
) -> PreflightReport:
    """Observe the target and judge every check; the dry run runs only when everything else passed."""
    options = options or PreflightOptions()
    started = time.monotonic()
    facts = observe(target)
    checks = decide_preflight(release, target, facts, facts.backups.observed_at, options)
    failed = [c.name for c in checks if c.status == "fail"]
    if "migration_dry_run" in options.skip:
        checks.append(PreflightCheck("migration_dry_run", "primary database", "skip", "skipped on request"))
    elif failed:
        checks.append(decide_dry_run(None, release, failed))
    else:
        dry_run = dry_run_migrations(target, release, sample_orders=options.sample_orders)
        checks.append(decide_dry_run(dry_run, release, ()))
    return PreflightReport(release.name, target.name, tuple(checks), time.monotonic() - started)
