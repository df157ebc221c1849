"""The target description: frozen, validated models.

A target says where things are, never what to do. The lab writes one for itself; AWS targets are written
from the Pulumi stack outputs. Secrets are never stored here: only paths to files that hold them
(a pgpass file, an SSH key, an offline keyring) or KMS key ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SiteName = Literal["primary", "standby"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Host(_Frozen):
    """An application host reached over SSH."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    address: str
    ssh_port: int = Field(default=22, ge=1, le=65535)
    ssh_user: str
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    base_dir: Path = Field(description="Where releases, the `current` link and shared state live")
    service_port: int = Field(ge=1, le=65535)
    python: str = "/usr/bin/python3"


class Database(_Frozen):
    """A PostgreSQL endpoint; self-managed on a host, or a managed (RDS) instance."""

    kind: Literal["self-managed", "rds"] = "self-managed"
    address: str
    port: int = Field(default=5432, ge=1, le=65535)
    name: str = "orders"
    user: str = "postgres"
    passfile: Path | None = Field(default=None, description="pgpass file; the password never sits here")
    bin_dir: Path | None = Field(default=None, description="pg_* tools of the server's major version")
    data_dir: Path | None = None
    rds_instance_id: str | None = None
    # RDS: the secret holding the master user's credentials (`manage_master_user_password`), read at run
    # time when no passfile is given; a replica names its source's secret (the same credentials).
    master_secret_arn: str | None = None
    # RDS: the controller's CIDRs, admitted through the fence's security group so a failback can still
    # read what the fenced writer acknowledged (never the service's hosts).
    fence_admit: tuple[str, ...] = ()


class HostDiscovery(_Frozen):
    """Hosts that come and go (an auto scaling group): found at run time by their tags, by Ansible through
    the amazon.aws.aws_ec2 inventory plugin and by the toolkit through EC2 DescribeInstances."""

    tags: dict[str, str] = Field(min_length=1, description="every tag an order host of the site carries")
    ssh_user: str
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    base_dir: Path
    service_port: int = Field(ge=1, le=65535)


class LoadBalancer(_Frozen):
    """A site's load balancer: the alias target of its Route53 failover record on a real AWS target (the
    lab has none: its records are A records with a host's address)."""

    arn: str = Field(pattern=r"^arn:aws[a-z-]*:elasticloadbalancing:")
    dns_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
    # The load balancer's canonical hosted zone (an alias target's HostedZoneId), not the record's zone.
    hosted_zone_id: str = Field(pattern=r"^Z[A-Z0-9]+$")


class NetworkFence(_Frozen):
    """A self-managed database on AWS: the security group rule that admits the order service to it. A
    failover whose old writer answers neither SQL nor SSH revokes it (the cloud-level fence); failback
    gives it back once the site is a standby again."""

    database_group_id: str = Field(pattern=r"^sg-[0-9a-f]+$")
    service_group_id: str = Field(pattern=r"^sg-[0-9a-f]+$")


class Site(_Frozen):
    name: SiteName
    region: str
    # Fixed hosts, or none when `discover` finds them at run time.
    hosts: tuple[Host, ...] = ()
    discover: HostDiscovery | None = None
    database: Database
    load_balancer: LoadBalancer | None = None
    network_fence: NetworkFence | None = None

    @model_validator(mode="after")
    def _hosts_known(self) -> Site:
        if not self.hosts and self.discover is None:
            raise ValueError("a site needs hosts, or discover (the tags its hosts carry)")
        return self


class AwsEndpoint(_Frozen):
    """Where AWS is: None means the real AWS endpoints; the lab points at its moto server."""

    endpoint_url: str | None = None
    profile: str | None = None


class BackupStore(_Frozen):
    bucket: str
    region: str
    prefix: str = "backups/"
    # Where this copy's S3 answers when it is not the target's AWS endpoint (an S3-compatible store, a
    # VPC endpoint; a game day's fault proxy). None: the target's `aws.endpoint_url`.
    endpoint_url: str | None = None
    # Parts of 5 MiB (more past 4.9 GiB) uploading at once to this copy while the next one fills. One
    # keeps a two-copy backup's parts in memory once (about 15 MiB); each more is up to 10 MiB more,
    # for a copy whose single connection cannot keep up with the codec (about 75 MiB/s).
    parts_in_flight: int = Field(default=1, ge=1, le=16)


class BackupStores(_Frozen):
    local: BackupStore
    remote: BackupStore

    @model_validator(mode="after")
    def _copies_are_apart(self) -> BackupStores:
        if (self.local.bucket, self.local.region) == (self.remote.bucket, self.remote.region):
            raise ValueError("the local and remote backup copies must be in different buckets")
        return self


class KeySource(_Frozen):
    """Where per-backup data keys come from: KMS, or an offline keyring file for air-gapped sites."""

    kind: Literal["kms", "keyring"]
    kms_key_id: str | None = None
    region: str | None = None
    keyring: Path | None = None
    # The KMS HMAC key (GENERATE_VERIFY_MAC) that authenticates manifests; only the runbook side may use
    # it. None: the alias recovery.backup.keys.DEFAULT_MANIFEST_MAC_KEY.
    manifest_mac_key_id: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> KeySource:
        if self.kind == "kms" and not (self.kms_key_id and self.region):
            raise ValueError("a kms key source needs kms_key_id and region")
        if self.kind == "keyring" and self.keyring is None:
            raise ValueError("a keyring key source needs keyring (the path of the keyring file)")
        return self


class LockTable(_Frozen):
    """The DynamoDB table holding the target-wide lock (partition key `lock_id`, a string)."""

    name: str = Field(min_length=3, max_length=255)
    region: str


class Traffic(_Frozen):
    """The Route53 failover records clients follow, and the front door URL they use."""

    hosted_zone_id: str
    record_name: str
    front_door_url: str


class Objectives(_Frozen):
    rto_seconds: float = Field(default=60, gt=0)
    rpo_seconds: float = Field(default=5, ge=0)
    realtime_backup_max_age_seconds: float = Field(default=120, gt=0)
    daily_backup_max_age_hours: float = Field(default=26, gt=0)
    replication_lag_max_seconds: float = Field(default=5, gt=0)
    latency_p95_ms: float = Field(default=500, gt=0)
    error_rate_max: float = Field(default=0.01, ge=0, le=1)


class WatchPolicy(_Frozen):
    """How `recovery watch` acts on this target: automatic failover (off unless a team turns it on) and
    how long the writer's database must fail its probes before the watch acts (one failed probe never)."""

    automatic_failover: bool = False
    failures_to_act: int = Field(default=3, ge=2)
    seconds_to_act: float = Field(default=2.0, ge=0)
    interval_seconds: float = Field(default=1.0, gt=0, le=60)


class Target(_Frozen):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    kind: Literal["lab", "aws"]
    state_dir: Path = Field(description="Journals, locks and the backup catalog cache of this target")
    inventory: Path = Field(description="The Ansible inventory of this target")
    aws: AwsEndpoint = AwsEndpoint()
    primary: Site
    standby: Site
    backup: BackupStores
    keys: KeySource
    traffic: Traffic
    objectives: Objectives = Objectives()
    watch: WatchPolicy = WatchPolicy()
    # The lock every controller sees; None: the controller's flock alone (recovery.engine.lock).
    lock_table: LockTable | None = None
    intake_queue_url: str | None = None
    team_topic_arn: str | None = None
    customer_topic_arn: str | None = None
    notification_templates: Path | None = Field(
        default=None, description="A directory of the team's own message templates (recovery/notify)"
    )
    # Which site holds the writable database now. Never read from target.yaml's text: the loader fills
    # it from the site record in state_dir (recovery/targets/sites.py), which every promotion rewrites.
    writer: SiteName = Field(default="primary", exclude=True)

    @model_validator(mode="after")
    def _sites_named(self) -> Target:
        if self.primary.name != "primary" or self.standby.name != "standby":
            raise ValueError("the sites must be named primary and standby")
        if (self.primary.load_balancer is None) != (self.standby.load_balancer is None):
            # Traffic moves by alias to a load balancer, or by address: never half of each.
            raise ValueError("name the load_balancer of both sites or of neither")
        return self

    def site(self, name: SiteName) -> Site:
        return self.primary if name == "primary" else self.standby

    @property
    def writable(self) -> Site:
        """The site whose database takes writes now: "the primary" for upgrade, backup and restore."""
        return self.site(self.writer)

    @property
    def replica(self) -> Site:
        """The other site: a standby of the writer, or an old primary not yet rebuilt."""
        return self.site("standby" if self.writer == "primary" else "primary")

    def hosts(self) -> tuple[Host, ...]:
        return self.primary.hosts + self.standby.hosts
