"""Preflight on RDS databases: what the RDS API and CloudWatch say, observed once, judged by pure rules.

Checks (each one line with the figure and the limit):
- `rds_engine_version`: the instance's engine major at least the release's PostgreSQL minimum;
- `rds_maintenance`: no maintenance action pending (RDS applies them in its window, which could fall into
  the upgrade: apply or defer them first);
- `rds_backups`: automated backups on (retention >= 1 day) and the latest restorable time no older than
  the realtime objective: point-in-time recovery, the RDS realtime kind, can reach just before the change;
- `rds_replica_lag`: on a replica, CloudWatch's `ReplicaLag` within the replication objective (no datapoint
  in the last ten minutes fails: the lag is unknown);
- `rds_free_storage`: `FreeStorageSpace` at least `MIN_FREE_FRACTION` of the allocated storage (a full
  volume stops the database; storage autoscaling needs headroom to react).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from recovery.drivers.aws import AwsDriver
from recovery.drivers.rds import RdsDriver
from recovery.errors import RecoveryError
from recovery.targets.model import Objectives, SiteName, Target

RDS_CHECK_NAMES = (
    "rds_engine_version",
    "rds_maintenance",
    "rds_backups",
    "rds_replica_lag",
    "rds_free_storage",
)
MIN_FREE_FRACTION = 0.10
GIB = 1024**3


@dataclass(frozen=True)
class RdsFacts:
    """One site's RDS instance as observed for preflight; `problem` when it could not be observed."""

    site: SiteName
    instance: str
    problem: str | None = None
    engine_version: str = ""
    status: str = ""
    is_replica: bool = False
    pending_maintenance: tuple[str, ...] = ()
    backup_retention_days: int = 0
    latest_restorable_time: datetime | None = None
    replica_lag_seconds: float | None = None
    free_storage_bytes: float | None = None
    allocated_storage_gb: int = 0


@dataclass(frozen=True)
class RdsFinding:
    name: str
    subject: str
    ok: bool
    reason: str


def observe_rds(target: Target, now: datetime, aws: AwsDriver | None = None) -> tuple[RdsFacts, ...]:
    """The RDS facts of every site whose database is `kind: rds` (none for self-managed targets)."""
    driver = aws or AwsDriver(target.aws)
    found: list[RdsFacts] = []
    for site in (target.primary, target.standby):
        database = site.database
        if database.kind != "rds":
            continue
        identifier = database.rds_instance_id or ""
        if not identifier:
            found.append(RdsFacts(site.name, "(none)", "the target names no rds_instance_id for this site"))
            continue
        rds = RdsDriver(driver, site.region)
        try:
            instance = rds.describe(identifier)
            found.append(
                RdsFacts(
                    site=site.name,
                    instance=identifier,
                    engine_version=instance.engine_version,
                    status=instance.status,
                    is_replica=instance.is_replica,
                    pending_maintenance=tuple(rds.pending_maintenance(instance.arn)),
                    backup_retention_days=instance.backup_retention_days,
                    latest_restorable_time=instance.latest_restorable_time,
                    replica_lag_seconds=(
                        rds.latest_metric(identifier, "ReplicaLag", now=now) if instance.is_replica else None
                    ),
                    free_storage_bytes=rds.latest_metric(
                        identifier, "FreeStorageSpace", now=now, statistic="Minimum"
                    ),
                    allocated_storage_gb=instance.allocated_storage_gb,
                )
            )
        except RecoveryError as exc:
            found.append(RdsFacts(site.name, identifier, exc.message))
    return tuple(found)


def engine_major(version: str) -> int | None:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def decide_rds(
    facts: RdsFacts, *, postgres_min_major: int, objectives: Objectives, now: datetime
) -> list[RdsFinding]:
    """The RDS checks of one site. Pure."""
    subject = f"{facts.site} database {facts.instance}"
    if facts.problem is not None:
        return [RdsFinding("rds_engine_version", subject, False, f"cannot observe it: {facts.problem}")]
    findings = [_engine(facts, subject, postgres_min_major), _maintenance(facts, subject)]
    findings.append(_backups(facts, subject, objectives, now))
    if facts.is_replica:
        findings.append(_lag(facts, subject, objectives))
    findings.append(_storage(facts, subject))
    return findings


def _engine(facts: RdsFacts, subject: str, minimum: int) -> RdsFinding:
    major = engine_major(facts.engine_version)
    if major is None:
        return RdsFinding(
            "rds_engine_version", subject, False, f"engine version {facts.engine_version!r} is unreadable"
        )
    ok = major >= minimum
    return RdsFinding(
        "rds_engine_version",
        subject,
        ok,
        f"RDS PostgreSQL {facts.engine_version}, the release needs {minimum} or newer"
        + ("" if ok else "; upgrade the engine (a major version upgrade) or deploy another release"),
    )


def _maintenance(facts: RdsFacts, subject: str) -> RdsFinding:
    if not facts.pending_maintenance:
        return RdsFinding("rds_maintenance", subject, True, "no maintenance action pending")
    more = f" (and {len(facts.pending_maintenance) - 1} more)" if len(facts.pending_maintenance) > 1 else ""
    return RdsFinding(
        "rds_maintenance",
        subject,
        False,
        f"maintenance pending: {facts.pending_maintenance[0]}{more}; apply it "
        "(`aws rds apply-pending-maintenance-action`) or defer it before the upgrade",
    )


def _backups(facts: RdsFacts, subject: str, objectives: Objectives, now: datetime) -> RdsFinding:
    if facts.backup_retention_days < 1:
        return RdsFinding(
            "rds_backups",
            subject,
            False,
            "automated backups are off (retention 0 days): no point-in-time recovery; "
            "set database.backupRetentionDays",
        )
    if facts.latest_restorable_time is None:
        return RdsFinding(
            "rds_backups",
            subject,
            False,
            f"RDS reports no latest restorable time ({facts.backup_retention_days} days kept); "
            "wait for the first backup",
        )
    age = (now - facts.latest_restorable_time).total_seconds()
    limit = objectives.realtime_backup_max_age_seconds
    ok = age <= limit
    return RdsFinding(
        "rds_backups",
        subject,
        ok,
        f"restorable to {age:.0f} s ago, {facts.backup_retention_days} days kept (objective {limit:g} s)"
        + ("" if ok else "; RDS is not archiving transaction logs: look at the instance's events"),
    )


def _lag(facts: RdsFacts, subject: str, objectives: Objectives) -> RdsFinding:
    limit = objectives.replication_lag_max_seconds
    if facts.replica_lag_seconds is None:
        return RdsFinding(
            "rds_replica_lag",
            subject,
            False,
            "CloudWatch has no ReplicaLag datapoint in the last 10 minutes: the lag is unknown",
        )
    ok = facts.replica_lag_seconds <= limit
    return RdsFinding(
        "rds_replica_lag",
        subject,
        ok,
        f"ReplicaLag {facts.replica_lag_seconds:.1f} s (objective at most {limit:g} s)",
    )


def _storage(facts: RdsFacts, subject: str) -> RdsFinding:
    if facts.free_storage_bytes is None:
        return RdsFinding(
            "rds_free_storage",
            subject,
            False,
            "CloudWatch has no FreeStorageSpace datapoint in the last 10 minutes: free storage is unknown",
        )
    allocated = facts.allocated_storage_gb * GIB
    needed = allocated * MIN_FREE_FRACTION
    ok = facts.free_storage_bytes >= needed
    return RdsFinding(
        "rds_free_storage",
        subject,
        ok,
        f"{facts.free_storage_bytes / GIB:.1f} GiB free of {facts.allocated_storage_gb} GiB "
        f"(at least {MIN_FREE_FRACTION:.0%} wanted)"
        + ("" if ok else "; raise allocated storage before the upgrade"),
    )
