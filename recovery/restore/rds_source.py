"""The realtime kind on RDS: point-in-time recovery into a scratch instance instead of WAL on the host.

A target whose live database is `kind: rds` has no WAL archive, no base backup and no SSH to the
database host. What RDS keeps instead is its own continuous backup, so on RDS:

- a realtime *choice* is an RDS restore (`RdsRestore`): to a time inside the instance's restore window
  (local copy) or inside the window of its automated backups replicated into the other region (remote
  copy), or from the snapshot that carries a restore point (`order-recovery-point-<name>`, in the live
  region or copied into the other one);
- *recovering* it (`rds_recover_to`) restores into a new scratch instance beside the live one (its
  subnet group and security groups, private, single-AZ, its own managed secret), yields a connection to
  it, and deletes it afterwards, also when the restore failed;
- the domains are then copied beside live from that instance, verified and swapped exactly as for a
  self-managed server (recovery.restore.beside, recovery.runbooks.restore).

The selection rules stay those of `select_backups`: realtime first, the daily backup when no RDS restore
reaches the time (or carries the point), the local copy before the remote one. `select_on_rds` is the
pure decision; `observe_rds_restores` reads what RDS offers. A self-managed target never comes here.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from recovery.backup.catalog import CatalogEntry
from recovery.backup.keys import multi_region_key_in
from recovery.backup.naming import Domain, kinds_of
from recovery.drivers import db as dbdriver
from recovery.drivers.aws import AwsDriver
from recovery.drivers.rds import RdsDriver, RdsInstance, scratch_identifier
from recovery.drivers.secrets import read_credentials, run_time_passfile
from recovery.errors import UsageError
from recovery.restore.database import FromDatabase, Source
from recovery.restore.scope import Cut
from recovery.restore.selection import CopyLabel, DomainChoice, DomainRefusal, Selection, select_backups
from recovery.restore.sources import OpenedCopy, Sources, sources_for
from recovery.targets.model import Database, Target

CHOICE_PREFIX = "rds-"
POINT_SNAPSHOT_PREFIX = "order-recovery-point-"
LATEST = "latest"
_POINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,40}\Z")


def is_rds_target(target: Target) -> bool:
    return target.writable.database.kind == "rds"


def is_rds_choice(backup_id: str) -> bool:
    return backup_id.startswith(CHOICE_PREFIX)


def point_snapshot_id(point: str) -> str:
    """The snapshot that carries restore point `point` (the same identifier in both regions)."""
    if not _POINT_NAME.match(point):
        raise UsageError(
            f"restore point {point!r} cannot name an RDS snapshot; use letters, digits and hyphens (up to 41)"
        )
    return f"{POINT_SNAPSHOT_PREFIX}{point.lower()}"


@dataclass(frozen=True)
class RestoreWindow:
    """Where RDS can restore to a point in time from: the live instance's backups (local) or their
    replication into the other region (remote, `backup_arn`)."""

    copy: CopyLabel
    region: str
    source: str
    earliest: datetime
    latest: datetime
    backup_arn: str | None = None

    def reaches(self, at: datetime) -> bool:
        return self.earliest <= at <= self.latest


@dataclass(frozen=True)
class PointSnapshot:
    copy: CopyLabel
    region: str
    snapshot_id: str
    created_at: datetime


@dataclass(frozen=True)
class RdsRestores:
    """What RDS offers for one restore: its windows (local first) and the restore point's snapshots."""

    windows: tuple[RestoreWindow, ...]
    points: tuple[PointSnapshot, ...] = ()
    problems: tuple[str, ...] = ()  # what could not be observed, for the reasons


@dataclass(frozen=True)
class RdsRestore:
    """A realtime choice on RDS, as its backup id says it: `rds-pitr:<copy>:<time>` (the time observed as
    the latest restorable one when no time was asked for) or `rds-snapshot:<copy>:<snapshot id>@<time>`."""

    method: Literal["pitr", "snapshot"]
    copy: CopyLabel
    value: str

    @property
    def backup_id(self) -> str:
        return f"{CHOICE_PREFIX}{self.method}:{self.copy}:{self.value}"

    @classmethod
    def parse(cls, backup_id: str) -> RdsRestore:
        method, _, rest = backup_id.removeprefix(CHOICE_PREFIX).partition(":")
        copy, _, value = rest.partition(":")
        if method not in ("pitr", "snapshot") or copy not in ("local", "remote") or not value:
            raise UsageError(f"{backup_id!r} is not an RDS restore choice")
        return cls(method, copy, value)  # type: ignore[arg-type]

    @property
    def snapshot_id(self) -> str:
        return self.value.split("@", 1)[0]

    @property
    def moment(self) -> datetime | None:
        """The time the restore puts the data back to (None: the latest restorable time at restore)."""
        text = self.value.split("@", 1)[1] if self.method == "snapshot" and "@" in self.value else self.value
        if (self.method == "snapshot" and "@" not in self.value) or text == LATEST:
            return None
        return datetime.fromisoformat(text)


def rds_cut(choice: DomainChoice) -> Cut:
    """The moment an RDS restore puts its domain back to (rows after it are carried over). Pure."""
    moment = RdsRestore.parse(choice.backup_id).moment
    return Cut(choice.domain, choice.backup_id, moment or datetime.now(UTC))


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _copy_reason(copy: CopyLabel, local_problem: str) -> str:
    if copy == "local":
        return "from the local copy"
    return f"from the remote copy because {local_problem}"


def _by_point(domain: Domain, restores: RdsRestores, point: str) -> DomainChoice | None:
    for snapshot in sorted(restores.points, key=lambda s: s.copy != "local"):
        why = _copy_reason(snapshot.copy, "the live region holds no such snapshot")
        stamp = snapshot.created_at.astimezone(UTC).isoformat()
        restore = RdsRestore("snapshot", snapshot.copy, f"{snapshot.snapshot_id}@{stamp}")
        return DomainChoice(
            domain,
            restore.backup_id,
            "realtime",
            snapshot.copy,
            f"RDS snapshot {snapshot.snapshot_id} carries restore point {point!r}, {why}",
        )
    return None


def _by_time(domain: Domain, restores: RdsRestores, at: datetime | None) -> DomainChoice | str:
    """A choice, or the sentence saying why no RDS restore reaches the time."""
    local = next((w for w in restores.windows if w.copy == "local"), None)
    local_problem = (
        "the live instance's restore window cannot be read"
        if local is None
        else f"its window ({_when(local.earliest)} to {_when(local.latest)}) does not reach {_when(at)}"
        if at is not None
        else "it has no restorable time"
    )
    for window in sorted(restores.windows, key=lambda w: w.copy != "local"):
        if at is not None and not window.reaches(at):
            continue
        # Without a time: the latest restorable time seen now, so the cut is known before the restore.
        moment = window.latest if at is None else at
        restore = RdsRestore("pitr", window.copy, moment.astimezone(UTC).isoformat())
        target_time = f"its latest restorable time ({_when(window.latest)})" if at is None else _when(at)
        return DomainChoice(
            domain,
            restore.backup_id,
            "realtime",
            window.copy,
            f"RDS point-in-time recovery of {window.source} to {target_time}, "
            f"{_copy_reason(window.copy, local_problem)}",
        )
    spans = "; ".join(f"{w.copy} {_when(w.earliest)} to {_when(w.latest)}" for w in restores.windows)
    detail = spans or "; ".join(restores.problems) or "RDS reports no restore window"
    scope = f" reaches {_when(at)}" if at is not None else " is available"
    return f"no RDS point-in-time recovery{scope} ({detail})"


def select_on_rds(
    restores: RdsRestores,
    domains: Sequence[Domain],
    *,
    at: datetime | None,
    point: str | None,
    daily: Selection,
) -> Selection:
    """Per domain: an RDS restore (realtime) when one reaches the time or carries the point, else what
    `select_backups` chose among the daily backups (`daily`), its reason saying why. Pure."""
    choices: list[DomainChoice] = []
    refusals: list[DomainRefusal] = []
    for domain in dict.fromkeys(domains):
        why = ""
        if "realtime" in kinds_of(domain):
            found: DomainChoice | str | None
            if point is not None:
                found = (
                    _by_point(domain, restores, point) or f"no RDS snapshot carries restore point {point!r}"
                )
            else:
                found = _by_time(domain, restores, at)
            if isinstance(found, DomainChoice):
                choices.append(found)
                continue
            why = found
        fallback = daily.choice(domain)
        if fallback is not None:
            reason = f"{why}; so {fallback.reason}" if why else fallback.reason
            choices.append(DomainChoice(domain, fallback.backup_id, fallback.kind, fallback.copy, reason))
            continue
        refusal = daily.refusal(domain)
        detail = refusal.reason if refusal is not None else f"no daily backup of {domain}"
        refusals.append(
            DomainRefusal(
                domain, f"{why}; {detail}" if why else detail, refusal.damaged if refusal else False
            )
        )
    return Selection(tuple(choices), tuple(refusals))


# -- observation ------------------------------------------------------------------------------------------


def _live_instance(target: Target) -> str:
    identifier = target.writable.database.rds_instance_id
    if not identifier:
        raise UsageError("the target's primary database is kind rds but names no rds_instance_id; add it")
    return identifier


def _local_window(instance: RdsInstance, region: str) -> RestoreWindow | None:
    if instance.latest_restorable_time is None or instance.backup_retention_days < 1:
        return None
    earliest = instance.latest_restorable_time - timedelta(days=instance.backup_retention_days)
    if instance.created_at is not None:
        earliest = max(earliest, instance.created_at)
    return RestoreWindow("local", region, instance.identifier, earliest, instance.latest_restorable_time)


def observe_rds_restores(target: Target, point: str | None, aws: AwsDriver | None = None) -> RdsRestores:
    """The live instance's window, its replicated backups' window in the other region, and the restore
    point's snapshots in both regions."""
    driver = aws or AwsDriver(target.aws)
    identifier = _live_instance(target)
    local = RdsDriver(driver, target.primary.region)
    remote = RdsDriver(driver, target.standby.region)
    windows: list[RestoreWindow] = []
    problems: list[str] = []
    own = _local_window(local.describe(identifier), target.primary.region)
    if own is None:
        problems.append(f"{identifier} keeps no automated backups")
    else:
        windows.append(own)
    for replicated in remote.replicated_backups(identifier):
        if replicated.earliest is not None and replicated.latest is not None:
            windows.append(
                RestoreWindow(
                    "remote",
                    target.standby.region,
                    identifier,
                    replicated.earliest,
                    replicated.latest,
                    backup_arn=replicated.arn,
                )
            )
    points: list[PointSnapshot] = []
    if point is not None:
        snapshot_id = point_snapshot_id(point)
        for copy, rds in (("local", local), ("remote", remote)):
            found = rds.find_snapshot(snapshot_id)
            if found is not None and found.status == "available" and found.created_at is not None:
                points.append(PointSnapshot(copy, rds.region, snapshot_id, found.created_at))  # type: ignore[arg-type]
    return RdsRestores(tuple(windows), tuple(points), tuple(problems))


# -- recovery into a scratch instance -----------------------------------------------------------------------

# How a scratch instance is reached: its endpoint, the live database's name and the scratch's own master
# secret (read now, in a passfile for as long as the block runs). Tests stand a real PostgreSQL in here.
ScratchAccess = Callable[[RdsInstance, Database, AwsDriver, str], contextlib.AbstractContextManager[Database]]


@contextlib.contextmanager
def scratch_database(
    instance: RdsInstance, live: Database, aws: AwsDriver, region: str
) -> Iterator[Database]:
    if instance.address is None or instance.port is None or instance.master_secret_arn is None:
        raise UsageError(f"scratch instance {instance.identifier} reports no endpoint or master secret")
    credentials = read_credentials(aws, region, instance.master_secret_arn)
    with run_time_passfile(credentials, [(instance.address, instance.port)]) as passfile:
        yield live.model_copy(
            update={
                "address": instance.address,
                "port": instance.port,
                "user": credentials.username,
                "passfile": passfile,
                "master_secret_arn": instance.master_secret_arn,
                "rds_instance_id": instance.identifier,
            }
        )


SCRATCH_ACCESS: ScratchAccess = scratch_database


def _placement_site(target: Target, copy: CopyLabel) -> tuple[str, str]:
    """The region and the instance whose subnet group and security groups a scratch instance takes."""
    site = target.primary if copy == "local" else target.standby
    identifier = site.database.rds_instance_id
    if not identifier:
        raise UsageError(f"the target's {site.name} database names no rds_instance_id; add it")
    return site.region, identifier


@contextlib.contextmanager
def rds_recover_to(
    target: Target,
    choice: DomainChoice,
    *,
    at: datetime | None = None,
    restore_point: str | None = None,
    aws: AwsDriver | None = None,
) -> Iterator[str]:
    """Restore `choice` (an RDS restore) into a scratch instance; yield a conninfo for it; delete it after.

    `at` and `restore_point` are already in the choice's id; they are accepted so the caller can treat
    both platforms alike."""
    del at, restore_point
    restore = RdsRestore.parse(choice.backup_id)
    driver = aws or AwsDriver(target.aws)
    region, placed_by = _placement_site(target, restore.copy)
    rds = RdsDriver(driver, region)
    placement = rds.describe(placed_by).placement
    source = _live_instance(target)
    scratch_id = scratch_identifier(f"{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(3)}")
    key = target.keys.kms_key_id if target.keys.kind == "kms" else None
    key_here = key if key and f":{region}:" in key else None
    try:
        if restore.method == "snapshot":
            instance = rds.restore_snapshot(
                restore.snapshot_id, scratch_id, placement=placement, secret_key_id=key_here
            )
        else:
            moment = restore.moment
            backup_arn = None
            if restore.copy == "remote":
                found = [b for b in rds.replicated_backups(source) if b.arn]
                if not found:
                    raise UsageError(f"no automated backups of {source} are replicated into {region}")
                backup_arn = found[0].arn
            instance = rds.restore_to_time(
                source,
                scratch_id,
                at=moment,
                placement=placement,
                secret_key_id=key_here,
                source_backup_arn=backup_arn,
            )
        with SCRATCH_ACCESS(instance, target.writable.database, driver, region) as scratch:
            yield dbdriver.conninfo(scratch)
    finally:
        rds.delete_scratch(scratch_id)


def rds_selection(
    target: Target,
    domains: Sequence[Domain],
    at: datetime | None,
    point: str | None,
    entries: Sequence[CatalogEntry],
    aws: AwsDriver | None = None,
) -> Selection:
    """The selection on an RDS target: what RDS offers now, and the daily backups among `entries`."""
    daily = select_backups(
        [entry for entry in entries if entry.kind == "daily"],
        domains,
        at=at,
        restore_point=point,
        objectives=target.objectives,
    )
    return select_on_rds(observe_rds_restores(target, point, aws), domains, at=at, point=point, daily=daily)


# -- restore points on RDS ----------------------------------------------------------------------------------


def key_in_region(key_arn: str, region: str) -> str:
    """The multi-region key's copy in `region` (same key id, the region in the ARN). Pure."""
    regional = multi_region_key_in(key_arn, region)
    if regional is None:
        raise UsageError(
            f"{key_arn} is not a multi-region key; a snapshot copy in {region} needs that region's key"
        )
    return regional


@dataclass(frozen=True)
class PointSnapshots:
    snapshot_id: str
    local: str  # ARN in the live region
    remote: str  # ARN of its copy in the other region


def point_copy_key(target: Target) -> str:
    """The key a restore point's snapshot copy is encrypted with: the other region's copy of the target's
    multi-region KMS key; UsageError when the target has none (checked before anything is made)."""
    if target.keys.kind != "kms" or target.keys.kms_key_id is None:
        raise UsageError("copying a restore point's snapshot needs the target's KMS key (keys.kind: kms)")
    return key_in_region(target.keys.kms_key_id, target.standby.region)


def take_point_snapshot(target: Target, point: str, aws: AwsDriver | None = None) -> PointSnapshots:
    """The snapshot that carries restore point `point`, of the live instance, and its copy in the other
    region (encrypted with that region's copy of the target's key). Idempotent: existing ones are kept."""
    driver = aws or AwsDriver(target.aws)
    snapshot_id = point_snapshot_id(point)
    copy_key = point_copy_key(target)
    local = RdsDriver(driver, target.primary.region)
    remote = RdsDriver(driver, target.standby.region)
    made = local.find_snapshot(snapshot_id) or local.create_snapshot(
        _live_instance(target), snapshot_id, {"restore-point": point}
    )
    copy = remote.find_snapshot(snapshot_id) or remote.copy_snapshot(
        made.arn, target.primary.region, snapshot_id, kms_key_id=copy_key
    )
    return PointSnapshots(snapshot_id, made.arn, copy.arn)


def rds_sources(
    opened: Sequence[OpenedCopy], recovered: Mapping[str, FromDatabase], rds: Sequence[DomainChoice]
) -> Sources:
    """The sources of a selection with RDS restores: `sources_for` the opened backups, and each RDS
    choice's domain from its scratch instance (the schema too when no backup was opened)."""
    if not rds:
        return sources_for(opened, recovered)
    from_rds: dict[str, Source] = {choice.domain: recovered[choice.domain] for choice in rds}
    if not opened:
        return Sources(recovered[rds[0].domain], from_rds)
    chosen = sources_for(opened, recovered)
    return Sources(chosen.schema, {**chosen.domains, **from_rds})
