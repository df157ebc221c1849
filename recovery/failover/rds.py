"""RDS for PostgreSQL as a failover platform: the instance through the RDS API, the service's role over SQL.

RDS gives no SSH and no ALTER SYSTEM, so each operation is what the API allows plus what the master user
may do over SQL where the endpoint answers:
- observe: SQL when the endpoint answers (as self-managed); else the API's view: the instance's status,
  whether it is a replica, and its lag from CloudWatch's ReplicaLag (seconds; bytes stay unknown);
- fence: the instance moved into the security group that admits only the controller (confirmed from a
  fresh describe), and over SQL the service's role locked out, read-only by default and its sessions
  ended. An endpoint that does not answer reports the SQL fence as not confirmed, with the reason;
- promote: PromoteReadReplica, keeping the old writer's backup retention;
- open for writes: the groups recorded before the fence given back, then over SQL the role let in
  again and the generation recorded (this needs the endpoint: a new writer that does not answer is an
  error, as on a self-managed site);
- rebuild as a standby: a snapshot of the old writer (the safe copy), the old writer renamed aside (it
  stays fenced, for a person to delete), and a cross-region replica of the writer under its old name.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from psycopg import sql

from recovery.drivers import db as db_driver
from recovery.drivers.aws import AwsDriver
from recovery.drivers.rds import FENCED_FROM_TAG, Fenced, Placement, RdsDriver, RdsInstance
from recovery.errors import PreconditionFailed, RecoveryError, UsageError, first_line
from recovery.failover.platform import FenceMeans, Promotion, Rebuild
from recovery.failover.selfmanaged import SelfManaged, record_generation, wal_position
from recovery.failover.state import DatabaseState
from recovery.restore.rds_source import key_in_region
from recovery.targets.model import Site, Target

# Backups kept by a promoted replica when the old writer cannot be described (RDS's console default).
DEFAULT_BACKUP_RETENTION_DAYS = 7
_TERMINATE = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE usename = %s AND pid <> pg_backend_pid()
"""


def instance_id(site: Site) -> str:
    identifier = site.database.rds_instance_id
    if not identifier:
        raise UsageError(f"the {site.name} site's database is kind rds but names no rds_instance_id; add it")
    return identifier


def rds_name(text: str) -> str:
    """`text` as a valid piece of an RDS identifier: letters, digits and single hyphens."""
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in text.lower())
    return "-".join(part for part in cleaned.split("-") if part)


def set_aside_name(identifier: str, run_id: str) -> str:
    """The name the old writer is renamed to by one rebuild (at most 63 characters)."""
    return f"{identifier}-old-{rds_name(run_id)}"[:63].rstrip("-")


def snapshot_name(identifier: str, run_id: str) -> str:
    return f"{identifier}-before-rebuild-{rds_name(run_id)}"[:255].rstrip("-")


class RdsPlatform:
    """The RDS platform of a target's two sites."""

    def __init__(self, target: Target, aws: AwsDriver | None = None) -> None:
        self._target = target
        self._aws = aws or AwsDriver(target.aws)
        # The SQL side (the service's role, observe, WAL positions) is PostgreSQL's, as self-managed.
        self._sql = SelfManaged((target.writable, target.replica))

    def driver(self, site: Site) -> RdsDriver:
        return RdsDriver(self._aws, site.region)

    @property
    def service_role(self) -> str:
        return self._sql.service_role

    # --- observe -------------------------------------------------------------------------------------

    def observe(self, site: Site, writer: Site | None) -> DatabaseState:
        state = self._sql.observe(site, writer)
        try:
            instance = self.driver(site).find(instance_id(site))
        except RecoveryError as exc:
            return state if state.reachable else DatabaseState(reachable=False, problem=first_line(exc))
        if state.reachable:
            if instance is not None and self._fenced_by_groups(instance):
                return dataclasses.replace(state, read_only=True)
            return state
        return self._observe_by_api(site, instance, state.problem)

    def _observe_by_api(
        self, site: Site, instance: RdsInstance | None, sql_problem: str | None
    ) -> DatabaseState:
        """The instance as RDS reports it, when its endpoint does not answer the controller."""
        if instance is None:
            return DatabaseState(reachable=False, problem=f"RDS instance {instance_id(site)} does not exist")
        if instance.status != "available":
            return DatabaseState(reachable=False, problem=f"RDS reports the instance {instance.status}")
        lag = None
        if instance.is_replica:
            lag = self.driver(site).latest_metric(instance.identifier, "ReplicaLag", now=datetime.now(UTC))
        return DatabaseState(
            reachable=True,
            problem=f"SQL did not answer ({sql_problem or 'no reason given'}); state from the RDS API",
            in_recovery=instance.is_replica,
            read_only=instance.is_replica or self._fenced_by_groups(instance),
            lag_seconds=lag,
        )

    @staticmethod
    def _fenced_by_groups(instance: RdsInstance) -> bool:
        recorded = instance.tag(FENCED_FROM_TAG)
        return recorded is not None and set(instance.security_groups) != set(recorded.split())

    # --- fence ---------------------------------------------------------------------------------------

    def fence(self, site: Site) -> tuple[FenceMeans, ...]:
        return (self._fence_groups(site), self.fence_sql(site))

    def _fence_groups(self, site: Site) -> FenceMeans:
        identifier = instance_id(site)
        try:
            fenced = self.driver(site).fence(identifier, admit=site.database.fence_admit)
        except RecoveryError as exc:
            return FenceMeans("security-group", False, first_line(exc))
        return FenceMeans(
            "security-group",
            True,
            f"{identifier} is in {fenced.fence_group} only (it had {' '.join(fenced.previous_groups)})",
        )

    def fence_sql(self, site: Site) -> FenceMeans:
        """The service's role locked out, read-only by default and its sessions ended, read back from a new
        session; not confirmed (with the reason) when the endpoint does not answer the controller."""
        role = self.service_role_or_none()
        if role is None:
            return FenceMeans("database", False, "no database answers, so the service's role is unknown")
        try:
            with db_driver.connect(site.database, dbname="postgres", connect_timeout=3) as conn:
                name = sql.Identifier(role)
                conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(name))
                conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(name))
                conn.execute(_TERMINATE, (role,))
            with db_driver.connect(site.database, dbname="postgres", connect_timeout=3) as conn:
                row = conn.execute(
                    "SELECT (SELECT NOT rolcanlogin FROM pg_roles WHERE rolname = %s),"
                    " (SELECT count(*) FROM pg_stat_activity WHERE usename = %s)",
                    (role, role),
                ).fetchone()
        except RecoveryError as exc:
            return FenceMeans("database", False, f"SQL did not answer: {first_line(exc)}")
        locked, sessions = bool(row and row[0]), int(row[1]) if row else -1
        return FenceMeans(
            "database",
            locked and sessions == 0,
            f"role {role} may not log in: {locked}, read-only by default, {sessions} sessions left",
        )

    def service_role_or_none(self) -> str | None:
        try:
            return self.service_role
        except RecoveryError:
            return None

    # --- replay and promotion ------------------------------------------------------------------------

    def write_position(self, site: Site) -> str:
        return self._sql.write_position(site)

    def replayed(self, site: Site, position: str) -> bool:
        return self._sql.replayed(site, position)

    def promote(self, site: Site) -> Promotion:
        identifier = instance_id(site)
        rds = self.driver(site)
        before = rds.describe(identifier)
        rds.promote(identifier, backup_retention_days=self._retention(site))
        lsn, timeline = self._position(site)
        return Promotion(already=not before.is_replica, lsn=lsn, timeline=timeline)

    def _retention(self, site: Site) -> int:
        """The backup retention of the other site's instance (the writer being replaced), else the default."""
        other = self._target.standby if site.name == "primary" else self._target.primary
        try:
            found = self.driver(other).find(instance_id(other))
        except RecoveryError:
            found = None
        if found is None or found.backup_retention_days < 1:
            return DEFAULT_BACKUP_RETENTION_DAYS
        return found.backup_retention_days

    def _position(self, site: Site) -> tuple[str, int]:
        """The new writer's WAL position and timeline over SQL; "unknown" and 0 when it does not answer."""
        try:
            with db_driver.connect(site.database, dbname="postgres", connect_timeout=3) as conn:
                return wal_position(conn)
        except RecoveryError:
            return "unknown", 0

    def open_for_writes(self, site: Site, epoch: int) -> None:
        """Give back the groups recorded before a fence, then let the role in and record the generation."""
        self.unfence(site)
        with db_driver.connect(site.database, dbname="postgres") as conn:
            record_generation(conn, site, epoch)
            name = sql.Identifier(self.service_role)
            conn.execute(sql.SQL("ALTER ROLE {} RESET default_transaction_read_only").format(name))
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(name))

    def unfence(self, site: Site) -> bool:
        """The security groups the instance had before a fence, given back; False when it is not fenced."""
        rds = self.driver(site)
        instance = rds.describe(instance_id(site))
        if not self._fenced_by_groups(instance):
            return False
        recorded = tuple((instance.tag(FENCED_FROM_TAG) or "").split())
        rds.unfence(Fenced(instance.identifier, recorded, " ".join(instance.security_groups)))
        return True

    # --- rebuild -------------------------------------------------------------------------------------

    def rebuild_as_standby(self, site: Site, source: Site, run_id: str) -> Rebuild:
        """Snapshot, set aside, replica under the old name; each step skipped when a rerun finds it done."""
        identifier = instance_id(site)
        rds, writer = self.driver(site), self.driver(source).describe(instance_id(source))
        current = rds.find(identifier)
        if current is not None and current.replica_source in (writer.arn, writer.identifier):
            return Rebuild("none", f"{identifier} already replicates {writer.identifier}")
        aside = set_aside_name(identifier, run_id)
        old = rds.find(aside)
        if old is None:
            if current is None:
                raise PreconditionFailed(
                    f"RDS instance {identifier} does not exist in {site.region} and nothing was set aside "
                    f"as {aside}; nothing to rebuild from"
                )
            snapshot = snapshot_name(identifier, run_id)
            if rds.find_snapshot(snapshot) is None:
                rds.create_snapshot(identifier, snapshot, {"purpose": "before-rebuild"})
            old = rds.set_aside(identifier, aside)
        recorded = old.tag(FENCED_FROM_TAG)
        groups = tuple(recorded.split()) if recorded else old.security_groups
        placement = Placement(old.placement.subnet_group, groups)
        replica = rds.create_replica(
            identifier,
            source_arn=writer.arn,
            source_region=source.region,
            kms_key_id=key_in_region(self._key(), site.region),
            placement=placement,
            instance_class=old.instance_class or None,
        )
        return Rebuild(
            "replica",
            f"{replica.identifier} replicates {writer.identifier}; the old writer is kept as {aside} "
            f"(fenced), after snapshot {snapshot_name(identifier, run_id)}",
            set_aside=aside,
        )

    def _key(self) -> str:
        if self._target.keys.kind != "kms" or not self._target.keys.kms_key_id:
            raise PreconditionFailed(
                "a replica of an encrypted RDS writer needs the target's multi-region KMS key "
                "(keys.kind kms, kms_key_id); add it"
            )
        return self._target.keys.kms_key_id
