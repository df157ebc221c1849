"""RDS for PostgreSQL: the calls the toolkit makes on a managed database, each through `aws_call`.

What RDS offers in place of what a self-managed server gives over SSH:
- point-in-time recovery into a new *scratch* instance (`restore_to_time`, `restore_snapshot`), from which
  a restore copies the chosen domains; the scratch instance is deleted afterwards (`delete_scratch`);
- manual snapshots and their copies into the other region (`create_snapshot`, `copy_snapshot`), and the
  automated backups replicated into the other region (`replicated_backups`, `start_backup_replication`);
- promotion of the cross-region replica (`promote`), the fence RDS allows (`fence`: the instance moved
  into a security group that admits nobody), and the old primary rebuilt as a replica of the new one
  (`set_aside`, then `create_replica` under its old identifier);
- what preflight observes (`pending_maintenance`, `latest_metric` over CloudWatch's AWS/RDS metrics).

Every call runs through `recovery.drivers.aws.aws_call` (one error line naming the action and the
resource), every client comes from the target's `AwsDriver`, and every change waits with boto3's own
waiters. Nothing here deletes anything but a scratch instance this module named (`SCRATCH_PREFIX`):
deleting a database stays a person's decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from botocore.exceptions import WaiterError

from recovery.drivers.aws import AwsDriver, aws_call
from recovery.errors import ExternalFailure, PreconditionFailed, UsageError

# Every instance the toolkit creates for a restore is named so; only those are ever deleted by it.
SCRATCH_PREFIX = "order-recovery-scratch-"
# The security group that admits nobody: an instance moved into it takes no connection (the fence).
FENCE_GROUP_NAME = "order-recovery-fence"
POSTGRES_PORT = 5432
# Set on an instance before it is fenced: the groups it had, so a fence rerun after a crash still knows
# what to give back.
FENCED_FROM_TAG = "order-recovery:fenced-from"
NOT_FOUND = frozenset({"DBInstanceNotFound", "DBInstanceNotFoundFault"})
SNAPSHOT_NOT_FOUND = frozenset({"DBSnapshotNotFound", "DBSnapshotNotFoundFault"})
# Tags on what the toolkit creates, so a person (and the IAM conditions) can tell it apart.
CREATED_BY = {"managed-by": "order-recovery"}

T = TypeVar("T")


@dataclass(frozen=True)
class WaitPolicy:
    """How boto3's waiters poll: RDS changes take minutes, so the defaults wait up to an hour."""

    delay_seconds: int = 30
    max_attempts: int = 120

    def config(self) -> dict[str, int]:
        return {"Delay": self.delay_seconds, "MaxAttempts": self.max_attempts}


@dataclass(frozen=True)
class Placement:
    """Where a new instance goes: the subnet group and security groups of a site's database."""

    subnet_group: str
    security_groups: tuple[str, ...]


@dataclass(frozen=True)
class RdsInstance:
    """One DB instance as DescribeDBInstances reports it (only what the toolkit decides on)."""

    identifier: str
    arn: str
    status: str
    engine_version: str
    instance_class: str
    address: str | None
    port: int | None
    backup_retention_days: int
    latest_restorable_time: datetime | None
    replica_source: str | None
    replicas: tuple[str, ...]
    security_groups: tuple[str, ...]
    subnet_group: str | None
    vpc_id: str | None
    allocated_storage_gb: int
    master_secret_arn: str | None
    kms_key_id: str | None
    multi_az: bool
    deletion_protection: bool
    created_at: datetime | None = None
    tags: tuple[tuple[str, str], ...] = ()

    def tag(self, key: str) -> str | None:
        return next((value for name, value in self.tags if name == key), None)

    @property
    def is_replica(self) -> bool:
        return self.replica_source is not None

    @property
    def placement(self) -> Placement:
        if self.subnet_group is None:
            raise PreconditionFailed(f"RDS instance {self.identifier} has no subnet group to place a copy in")
        return Placement(self.subnet_group, self.security_groups)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> RdsInstance:
        endpoint = raw.get("Endpoint") or {}
        subnets = raw.get("DBSubnetGroup") or {}
        secret = raw.get("MasterUserSecret") or {}
        return cls(
            identifier=str(raw["DBInstanceIdentifier"]),
            arn=str(raw.get("DBInstanceArn", "")),
            status=str(raw.get("DBInstanceStatus", "unknown")),
            engine_version=str(raw.get("EngineVersion", "")),
            instance_class=str(raw.get("DBInstanceClass", "")),
            address=endpoint.get("Address"),
            port=int(endpoint["Port"]) if endpoint.get("Port") else None,
            backup_retention_days=int(raw.get("BackupRetentionPeriod") or 0),
            latest_restorable_time=_utc(raw.get("LatestRestorableTime")),
            replica_source=raw.get("ReadReplicaSourceDBInstanceIdentifier"),
            replicas=tuple(str(r) for r in raw.get("ReadReplicaDBInstanceIdentifiers") or ()),
            security_groups=tuple(
                str(g["VpcSecurityGroupId"])
                for g in raw.get("VpcSecurityGroups") or ()
                if g.get("Status", "active") in ("active", "adding")
            ),
            subnet_group=subnets.get("DBSubnetGroupName"),
            vpc_id=subnets.get("VpcId"),
            allocated_storage_gb=int(raw.get("AllocatedStorage") or 0),
            master_secret_arn=secret.get("SecretArn"),
            kms_key_id=raw.get("KmsKeyId"),
            multi_az=bool(raw.get("MultiAZ")),
            deletion_protection=bool(raw.get("DeletionProtection")),
            created_at=_utc(raw.get("InstanceCreateTime")),
            tags=tuple((str(t["Key"]), str(t.get("Value", ""))) for t in raw.get("TagList") or ()),
        )


@dataclass(frozen=True)
class RdsSnapshot:
    identifier: str
    arn: str
    instance: str
    status: str
    kind: str  # manual or automated
    created_at: datetime | None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> RdsSnapshot:
        return cls(
            identifier=str(raw["DBSnapshotIdentifier"]),
            arn=str(raw.get("DBSnapshotArn", "")),
            instance=str(raw.get("DBInstanceIdentifier", "")),
            status=str(raw.get("Status", "unknown")),
            kind=str(raw.get("SnapshotType", "manual")),
            created_at=_utc(raw.get("SnapshotCreateTime")),
        )


@dataclass(frozen=True)
class ReplicatedBackup:
    """Automated backups of an instance replicated into this region: a restore window far from the source."""

    arn: str
    source_instance: str
    source_region: str | None
    earliest: datetime | None
    latest: datetime | None

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> ReplicatedBackup:
        window = raw.get("RestoreWindow") or {}
        return cls(
            arn=str(raw.get("DBInstanceAutomatedBackupsArn", "")),
            source_instance=str(raw.get("DBInstanceIdentifier", "")),
            source_region=raw.get("Region"),
            earliest=_utc(window.get("EarliestTime")),
            latest=_utc(window.get("LatestTime")),
        )


@dataclass(frozen=True)
class Fenced:
    """What `fence` changed: the groups to give back (`unfence`) and the group that admits nobody."""

    instance: str
    previous_groups: tuple[str, ...]
    fence_group: str


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def _tags(extra: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in {**CREATED_BY, **extra}.items()]


def _scratch_params(placement: Placement, source: str, secret_key_id: str | None) -> dict[str, Any]:
    """What every scratch instance is: placed like the live one, private, single-AZ, unprotected (it is
    deleted after the restore), with its own RDS-managed master secret, tagged as the toolkit's."""
    params: dict[str, Any] = {
        "DBSubnetGroupName": placement.subnet_group,
        "VpcSecurityGroupIds": list(placement.security_groups),
        "MultiAZ": False,
        "PubliclyAccessible": False,
        "DeletionProtection": False,
        "ManageMasterUserPassword": True,
        "Tags": _tags({"purpose": "restore-scratch", "source": source}),
    }
    if secret_key_id is not None:
        params["MasterUserSecretKmsKeyId"] = secret_key_id
    return params


def is_scratch(identifier: str) -> bool:
    return identifier.startswith(SCRATCH_PREFIX)


def scratch_identifier(restore_id: str) -> str:
    """The scratch instance of one restore: a valid RDS identifier (letters, digits, hyphens; <= 63)."""
    cleaned = "".join(ch if ch.isalnum() else "-" for ch in restore_id.lower()).strip("-")
    identifier = f"{SCRATCH_PREFIX}{cleaned}"[:63].rstrip("-")
    if not cleaned:
        raise UsageError(f"restore id {restore_id!r} gives no usable RDS identifier")
    return identifier


class RdsDriver:
    """RDS, CloudWatch and EC2 calls on one region's databases, through one target's `AwsDriver`."""

    def __init__(self, aws: AwsDriver, region: str, wait: WaitPolicy | None = None) -> None:
        self.aws = aws
        self.region = region
        self.wait_policy = wait or WaitPolicy()

    @property
    def rds(self) -> Any:
        return self.aws.client("rds", self.region)

    def _call(self, call: Callable[[], T], action: str, resource: str, **kwargs: Any) -> T | None:
        return aws_call(call, action, f"{resource} in {self.region}", **kwargs)

    def _wait(self, waiter: str, what: str, **params: Any) -> None:
        """Wait with boto3's waiter `waiter`; a timeout or a terminal state is one error line."""
        with self.aws.translate(f"wait for {what}", f"RDS in {self.region}"):
            try:
                self.rds.get_waiter(waiter).wait(**params, WaiterConfig=self.wait_policy.config())
            except WaiterError as exc:  # a BotoCoreError too: told apart before the translation
                reason = str(exc.kwargs.get("reason") or exc).splitlines()[0][:160]
                raise ExternalFailure(f"RDS in {self.region}: {what} did not happen ({reason})") from None

    # -- reading -------------------------------------------------------------------------------------

    def find(self, identifier: str) -> RdsInstance | None:
        found = self._call(
            lambda: self.rds.describe_db_instances(DBInstanceIdentifier=identifier),
            "describe the DB instance",
            f"RDS instance {identifier}",
            absent=NOT_FOUND,
        )
        if found is None or not found["DBInstances"]:
            return None
        return RdsInstance.parse(found["DBInstances"][0])

    def describe(self, identifier: str) -> RdsInstance:
        instance = self.find(identifier)
        if instance is None:
            raise PreconditionFailed(
                f"RDS instance {identifier} does not exist in {self.region}; "
                "check the target's rds_instance_id"
            )
        return instance

    def latest_restorable_time(self, identifier: str) -> datetime | None:
        return self.describe(identifier).latest_restorable_time

    def snapshots(self, identifier: str, *, kind: str | None = None) -> list[RdsSnapshot]:
        """The instance's snapshots in this region, oldest first (`kind`: manual or automated)."""
        params: dict[str, Any] = {"DBInstanceIdentifier": identifier}
        if kind is not None:
            params["SnapshotType"] = kind
        found = self._call(
            lambda: self.rds.describe_db_snapshots(**params),
            "list the snapshots",
            f"RDS instance {identifier}",
        )
        snapshots = [RdsSnapshot.parse(raw) for raw in (found or {}).get("DBSnapshots", ())]
        return sorted(
            snapshots, key=lambda s: (s.created_at or datetime.min.replace(tzinfo=UTC), s.identifier)
        )

    def find_snapshot(self, snapshot_id: str) -> RdsSnapshot | None:
        found = self._call(
            lambda: self.rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot_id),
            "describe the snapshot",
            f"RDS snapshot {snapshot_id}",
            absent=SNAPSHOT_NOT_FOUND,
        )
        if not found or not found["DBSnapshots"]:
            return None
        return RdsSnapshot.parse(found["DBSnapshots"][0])

    def replicated_backups(self, source_instance: str) -> list[ReplicatedBackup]:
        """Automated backups of `source_instance` (of another region) kept in this region."""
        found = self._call(
            lambda: self.rds.describe_db_instance_automated_backups(DBInstanceIdentifier=source_instance),
            "list the replicated automated backups",
            f"RDS instance {source_instance}",
            absent=frozenset({"DBInstanceAutomatedBackupNotFound", "DBInstanceAutomatedBackupNotFoundFault"}),
        )
        return [ReplicatedBackup.parse(raw) for raw in (found or {}).get("DBInstanceAutomatedBackups", ())]

    def pending_maintenance(self, instance_arn: str) -> list[str]:
        """The maintenance actions pending on the instance, as `action (auto-applied after ...)` lines."""
        found = self._call(
            lambda: self.rds.describe_pending_maintenance_actions(ResourceIdentifier=instance_arn),
            "list pending maintenance",
            instance_arn,
        )
        lines = []
        for resource in (found or {}).get("PendingMaintenanceActions", ()):
            for action in resource.get("PendingMaintenanceActionDetails", ()):
                when = action.get("AutoAppliedAfterDate") or action.get("ForcedApplyDate")
                text = str(action.get("Action", "unknown"))
                if action.get("Description"):
                    text += f": {action['Description']}"
                if when is not None:
                    moment = _utc(when)
                    text += f" (applied from {moment:%Y-%m-%dT%H:%MZ})" if moment else ""
                lines.append(text)
        return lines

    def latest_metric(
        self, identifier: str, metric: str, *, now: datetime, statistic: str = "Maximum", minutes: int = 10
    ) -> float | None:
        """The newest datapoint of an AWS/RDS metric of the instance over the last `minutes`; None if none."""
        cloudwatch = self.aws.client("cloudwatch", self.region)
        found = self._call(
            lambda: cloudwatch.get_metric_statistics(
                Namespace="AWS/RDS",
                MetricName=metric,
                Dimensions=[{"Name": "DBInstanceIdentifier", "Value": identifier}],
                StartTime=now - timedelta(minutes=minutes),
                EndTime=now,
                Period=60,
                Statistics=[statistic],
            ),
            f"read the {metric} metric",
            f"RDS instance {identifier}",
        )
        points = sorted((found or {}).get("Datapoints", ()), key=lambda p: p["Timestamp"])
        return float(points[-1][statistic]) if points else None

    # -- scratch instances for a restore ---------------------------------------------------------------

    def restore_to_time(
        self,
        source: str,
        scratch_id: str,
        *,
        at: datetime | None,
        placement: Placement,
        secret_key_id: str | None = None,
        source_backup_arn: str | None = None,
    ) -> RdsInstance:
        """Point-in-time recovery of `source` (or of replicated automated backups, `source_backup_arn`)
        into a new scratch instance; wait until it is available. `at` None: the latest restorable time.

        The scratch instance is private, single-AZ, without deletion protection and with its own
        RDS-managed master secret (encrypted with `secret_key_id`), tagged as the toolkit's."""
        self._refuse_unless_scratch(scratch_id)
        params = _scratch_params(placement, source, secret_key_id)
        params.update(TargetDBInstanceIdentifier=scratch_id, CopyTagsToSnapshot=False)
        if source_backup_arn is not None:
            params["SourceDBInstanceAutomatedBackupsArn"] = source_backup_arn
        else:
            params["SourceDBInstanceIdentifier"] = source
        if at is None:
            params["UseLatestRestorableTime"] = True
        else:
            params["RestoreTime"] = at.astimezone(UTC)
        self._call(
            lambda: self.rds.restore_db_instance_to_point_in_time(**params),
            "restore to a point in time",
            f"RDS instance {source} into {scratch_id}",
        )
        return self._available(scratch_id, f"scratch instance {scratch_id} to be available")

    def restore_snapshot(
        self, snapshot_id: str, scratch_id: str, *, placement: Placement, secret_key_id: str | None = None
    ) -> RdsInstance:
        """A scratch instance from a snapshot (a restore point); wait until it is available."""
        self._refuse_unless_scratch(scratch_id)
        params = _scratch_params(placement, snapshot_id, secret_key_id)
        params.update(DBInstanceIdentifier=scratch_id, DBSnapshotIdentifier=snapshot_id)
        self._call(
            lambda: self.rds.restore_db_instance_from_db_snapshot(**params),
            "restore a snapshot",
            f"RDS snapshot {snapshot_id} into {scratch_id}",
        )
        return self._available(scratch_id, f"scratch instance {scratch_id} to be available")

    def delete_scratch(self, scratch_id: str) -> bool:
        """Delete a scratch instance this module created (no final snapshot: it is a copy) and wait until
        it is gone; False when it was already gone. Anything not named as a scratch instance is refused."""
        self._refuse_unless_scratch(scratch_id)
        found = self.find(scratch_id)
        if found is None:
            return False
        if found.deletion_protection:
            # Ours by name: a scratch instance that inherited protection from its source is unprotected.
            self._call(
                lambda: self.rds.modify_db_instance(
                    DBInstanceIdentifier=scratch_id, DeletionProtection=False, ApplyImmediately=True
                ),
                "lift deletion protection from the scratch instance",
                f"RDS instance {scratch_id}",
            )
        deleted = self._call(
            lambda: self.rds.delete_db_instance(
                DBInstanceIdentifier=scratch_id, SkipFinalSnapshot=True, DeleteAutomatedBackups=True
            ),
            "delete the scratch instance",
            f"RDS instance {scratch_id}",
            absent=NOT_FOUND,
        )
        if deleted is None:
            return False
        self._wait(
            "db_instance_deleted",
            f"scratch instance {scratch_id} to be deleted",
            DBInstanceIdentifier=scratch_id,
        )
        return True

    @staticmethod
    def _refuse_unless_scratch(identifier: str) -> None:
        if not is_scratch(identifier):
            raise UsageError(
                f"{identifier} is not a scratch instance name ({SCRATCH_PREFIX}...); the toolkit creates and "
                "deletes only its own scratch instances"
            )

    # -- snapshots and their copies in the other region --------------------------------------------------

    def create_snapshot(
        self, identifier: str, snapshot_id: str, tags: Mapping[str, str] | None = None
    ) -> RdsSnapshot:
        """A manual snapshot of the instance; wait until it is available (the safe copy before a change)."""
        self._call(
            lambda: self.rds.create_db_snapshot(
                DBInstanceIdentifier=identifier, DBSnapshotIdentifier=snapshot_id, Tags=_tags(tags or {})
            ),
            "create a snapshot",
            f"RDS instance {identifier}",
        )
        return self._snapshot_available(snapshot_id, f"snapshot {snapshot_id} to be available")

    def copy_snapshot(
        self, source_arn: str, source_region: str, snapshot_id: str, *, kms_key_id: str
    ) -> RdsSnapshot:
        """Copy a snapshot of another region into this one, encrypted with this region's key; wait."""
        self._call(
            lambda: self.rds.copy_db_snapshot(
                SourceDBSnapshotIdentifier=source_arn,
                TargetDBSnapshotIdentifier=snapshot_id,
                KmsKeyId=kms_key_id,
                SourceRegion=source_region,
                CopyTags=True,
            ),
            "copy a snapshot",
            f"RDS snapshot {source_arn} into {snapshot_id}",
        )
        return self._snapshot_available(snapshot_id, f"snapshot copy {snapshot_id} to be available")

    def _available(self, identifier: str, what: str) -> RdsInstance:
        """Wait until the instance is available (`what` says for what), then describe it."""
        self._wait("db_instance_available", what, DBInstanceIdentifier=identifier)
        return self.describe(identifier)

    def _snapshot_available(self, snapshot_id: str, what: str) -> RdsSnapshot:
        self._wait("db_snapshot_available", what, DBSnapshotIdentifier=snapshot_id)
        snapshot = self.find_snapshot(snapshot_id)
        if snapshot is None:
            raise ExternalFailure(f"RDS in {self.region}: snapshot {snapshot_id} vanished after it was made")
        return snapshot

    def start_backup_replication(self, source_arn: str, *, kms_key_id: str, retention_days: int) -> str:
        """Replicate the automated backups of `source_arn` (another region) into this region; the
        replication's ARN. The stacks declare this (`InstanceAutomatedBackupsReplication`); the call is
        for a site built before that declaration."""
        found = self._call(
            lambda: self.rds.start_db_instance_automated_backups_replication(
                SourceDBInstanceArn=source_arn, KmsKeyId=kms_key_id, BackupRetentionPeriod=retention_days
            ),
            "start automated backup replication",
            f"RDS instance {source_arn}",
        )
        return str(
            (found or {}).get("DBInstanceAutomatedBackup", {}).get("DBInstanceAutomatedBackupsArn", "")
        )

    # -- failover: promote, fence, rebuild ---------------------------------------------------------------

    def promote(self, identifier: str, *, backup_retention_days: int) -> RdsInstance:
        """Promote a read replica to a standalone writable instance, keeping automated backups; wait.
        Idempotent: an instance that is no longer a replica is returned as it is."""
        instance = self.describe(identifier)
        if not instance.is_replica:
            return instance
        self._call(
            lambda: self.rds.promote_read_replica(
                DBInstanceIdentifier=identifier, BackupRetentionPeriod=backup_retention_days
            ),
            "promote the read replica",
            f"RDS instance {identifier}",
        )
        return self._available(identifier, f"{identifier} to be available after promotion")

    def fence_group(self, vpc_id: str, admit: Sequence[str] = ()) -> str:
        """The VPC's security group that admits nobody but PostgreSQL from `admit` (the controller's
        CIDRs, so a failback can still read what the fenced primary acknowledged; never the service's
        hosts). Created once, found by name afterwards; the admitted CIDRs are added when missing."""
        group_id = self._find_or_create_fence_group(vpc_id)
        ec2 = self.aws.client("ec2", self.region)
        for cidr in admit:
            rule = {
                "IpProtocol": "tcp",
                "FromPort": POSTGRES_PORT,
                "ToPort": POSTGRES_PORT,
                "IpRanges": [{"CidrIp": cidr, "Description": "the recovery controller"}],
            }
            self._call(
                # Called at once, inside this iteration: the rule it reads is this one.
                lambda: ec2.authorize_security_group_ingress(
                    GroupId=group_id,
                    IpPermissions=[rule],  # noqa: B023
                ),
                "admit the controller through the fence",
                f"security group {group_id}",
                absent=frozenset({"InvalidPermission.Duplicate"}),  # already admitted
            )
        return group_id

    def _find_or_create_fence_group(self, vpc_id: str) -> str:
        ec2 = self.aws.client("ec2", self.region)
        found = self._call(
            lambda: ec2.describe_security_groups(
                Filters=[
                    {"Name": "vpc-id", "Values": [vpc_id]},
                    {"Name": "group-name", "Values": [FENCE_GROUP_NAME]},
                ]
            ),
            "find the fence security group",
            f"VPC {vpc_id}",
        )
        groups = (found or {}).get("SecurityGroups", [])
        if groups:
            return str(groups[0]["GroupId"])
        created = self._call(
            lambda: ec2.create_security_group(
                GroupName=FENCE_GROUP_NAME,
                Description="Order recovery fence: admits no connection",
                VpcId=vpc_id,
                TagSpecifications=[{"ResourceType": "security-group", "Tags": _tags({"purpose": "fence"})}],
            ),
            "create the fence security group",
            f"VPC {vpc_id}",
        )
        group_id = str((created or {})["GroupId"])
        # A new group allows all egress; a fence allows nothing either way.
        self._call(
            lambda: ec2.revoke_security_group_egress(
                GroupId=group_id, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
            ),
            "close the fence group's egress",
            f"security group {group_id}",
        )
        return group_id

    def fence(self, identifier: str, admit: Sequence[str] = ()) -> Fenced:
        """Stop every new connection to the instance but the controller's (`admit`: its CIDRs): its
        security groups replaced by the fence group, applied at once; wait, then confirm from a fresh
        describe. Sessions already open are not cut by a security group change: the caller also ends them
        (or reboots) where the instance still answers."""
        instance = self.describe(identifier)
        if instance.vpc_id is None:
            raise PreconditionFailed(
                f"RDS instance {identifier} is not in a VPC; it cannot be fenced by groups"
            )
        group = self.fence_group(instance.vpc_id, admit)
        if instance.security_groups == (group,):
            # Fenced before (a rerun): what it had is in the tag written then.
            recorded = tuple((instance.tag(FENCED_FROM_TAG) or "").split())
            return Fenced(identifier, recorded, group)
        self._call(
            lambda: self.rds.add_tags_to_resource(
                ResourceName=instance.arn,
                Tags=[{"Key": FENCED_FROM_TAG, "Value": " ".join(instance.security_groups)}],
            ),
            "record the groups before the fence",
            f"RDS instance {identifier}",
        )
        self._modify_groups(identifier, (group,))
        return Fenced(identifier, instance.security_groups, group)

    def unfence(self, fenced: Fenced) -> RdsInstance:
        """Give the instance back the security groups it had before `fence`."""
        if not fenced.previous_groups:
            raise PreconditionFailed(
                f"no security groups were recorded for {fenced.instance}; set them by hand"
            )
        self._modify_groups(fenced.instance, fenced.previous_groups)
        return self.describe(fenced.instance)

    def _modify_groups(self, identifier: str, groups: Sequence[str]) -> None:
        self._call(
            lambda: self.rds.modify_db_instance(
                DBInstanceIdentifier=identifier, VpcSecurityGroupIds=list(groups), ApplyImmediately=True
            ),
            "change the security groups",
            f"RDS instance {identifier}",
        )
        now = self._available(identifier, f"{identifier} to apply its security groups").security_groups
        if set(now) != set(groups):
            raise ExternalFailure(
                f"RDS instance {identifier} reports security groups {', '.join(now) or 'none'} after the "
                f"change to {', '.join(groups)}; check it in the console"
            )

    def set_aside(self, identifier: str, new_identifier: str) -> RdsInstance:
        """Rename an instance (the old primary) so its identifier is free for the replica that replaces it;
        wait under the new name. Idempotent: done once the new name exists (the old name may by then
        belong to the replica that replaced it, which must never be renamed in turn)."""
        renamed = self.find(new_identifier)
        if renamed is not None:
            return renamed
        self._call(
            lambda: self.rds.modify_db_instance(
                DBInstanceIdentifier=identifier, NewDBInstanceIdentifier=new_identifier, ApplyImmediately=True
            ),
            "rename the instance",
            f"RDS instance {identifier} to {new_identifier}",
        )
        return self._available(new_identifier, f"{new_identifier} to be available after the rename")

    def create_replica(
        self,
        identifier: str,
        *,
        source_arn: str,
        source_region: str,
        kms_key_id: str,
        placement: Placement,
        instance_class: str | None = None,
    ) -> RdsInstance:
        """A cross-region read replica of `source_arn` in this region, encrypted with this region's key and
        protected from deletion; wait until available. Idempotent when a replica of that source exists."""
        existing = self.find(identifier)
        if existing is not None:
            if existing.replica_source in (source_arn, source_arn.rsplit(":", 1)[-1]):
                return existing
            raise PreconditionFailed(
                f"RDS instance {identifier} exists in {self.region} and is not a replica of {source_arn}; "
                "set it aside first"
            )
        params: dict[str, Any] = {
            "DBInstanceIdentifier": identifier,
            "SourceDBInstanceIdentifier": source_arn,
            "SourceRegion": source_region,
            "KmsKeyId": kms_key_id,
            "DBSubnetGroupName": placement.subnet_group,
            "VpcSecurityGroupIds": list(placement.security_groups),
            "PubliclyAccessible": False,
            "DeletionProtection": True,
            "Tags": _tags({"purpose": "replica"}),
        }
        if instance_class is not None:
            params["DBInstanceClass"] = instance_class
        self._call(
            lambda: self.rds.create_db_instance_read_replica(**params),
            "create a read replica",
            f"RDS instance {identifier} of {source_arn}",
        )
        return self._available(identifier, f"replica {identifier} to be available")
