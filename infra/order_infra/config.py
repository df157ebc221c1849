"""The stack configuration, read once and validated before any resource is declared.

Every value lives under the project's namespace in Pulumi.<stack>.yaml (`order-recovery:<key>`). Parsing is
a pure function of a plain mapping so it is tested without the Pulumi runtime; `load_stack_config` is the
only place that talks to `pulumi.Config`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

PROJECT = "order-recovery"
SiteName = Literal["primary", "standby"]

# Keys read from the stack's config; objects are YAML mappings under the same namespace.
SCALAR_KEYS = (
    "site",
    "region",
    "accountId",
    "domainName",
    "hostedZoneId",
    "owner",
    "costCenter",
    "primaryStack",
)
OBJECT_KEYS = ("network", "app", "database", "backup", "objectives", "runbookPrincipals")

# Who may assume the runbook role: named roles or users of an account, never a whole account (`:root`).
PRINCIPAL_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[A-Za-z0-9+=,.@_/-]+$"


class StackConfigError(ValueError):
    """A config value is missing or wrong; the message names the key and what is expected."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


def _check_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network CIDR ({exc})") from None
    return value


class NetworkConfig(_Section):
    vpc_cidr: str
    availability_zones: tuple[str, ...] = Field(min_length=2)
    public_subnet_cidrs: tuple[str, ...] = Field(min_length=2)
    private_subnet_cidrs: tuple[str, ...] = Field(min_length=2)
    client_cidrs: tuple[str, ...] = Field(default=("0.0.0.0/0",), min_length=1)
    admin_cidrs: tuple[str, ...] = Field(
        min_length=1, description="Where the recovery controller's SSH comes from"
    )

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr(cls, value: str) -> str:
        return _check_cidr(value)

    @field_validator("public_subnet_cidrs", "private_subnet_cidrs", "client_cidrs", "admin_cidrs")
    @classmethod
    def _cidrs(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_cidr(v) for v in values)

    @model_validator(mode="after")
    def _subnets_fit(self) -> NetworkConfig:
        zones = len(self.availability_zones)
        if len(set(self.availability_zones)) != zones:
            raise ValueError("availabilityZones must be distinct")
        if len(self.public_subnet_cidrs) != zones or len(self.private_subnet_cidrs) != zones:
            raise ValueError("give one public and one private subnet CIDR per availability zone")
        vpc = ipaddress.ip_network(self.vpc_cidr)
        subnets = [ipaddress.ip_network(c) for c in self.public_subnet_cidrs + self.private_subnet_cidrs]
        for subnet in subnets:
            if not subnet.subnet_of(vpc):  # type: ignore[arg-type]
                raise ValueError(f"subnet {subnet} is outside vpcCidr {vpc}")
        for i, left in enumerate(subnets):
            for right in subnets[i + 1 :]:
                if left.overlaps(right):
                    raise ValueError(f"subnets {left} and {right} overlap")
        return self


class AppConfig(_Section):
    instance_type: str
    image_id: str = Field(description="An AMI id, or resolve:ssm:<parameter> for the latest image")
    min_size: int = Field(ge=1)
    max_size: int = Field(ge=1)
    desired_capacity: int = Field(ge=1)
    service_port: int = Field(default=8080, ge=1024, le=65535)
    health_check_path: str = Field(default="/health", pattern=r"^/")
    root_volume_gb: int = Field(default=20, ge=8)
    # The Auto Scaling service-linked role is account-wide and the site key's policy names it: a fresh
    # account has none until something creates it. True: the primary stack declares it (only one stack may).
    create_service_linked_role: bool = False
    # The release every new host installs at boot, until a deploy names a newer one (docs/deploy.md).
    release: str = Field(default="v1", pattern=r"^[A-Za-z0-9._-]+$")

    @model_validator(mode="after")
    def _sizes(self) -> AppConfig:
        if not self.min_size <= self.desired_capacity <= self.max_size:
            raise ValueError("need minSize <= desiredCapacity <= maxSize")
        return self


class DatabaseConfig(_Section):
    instance_class: str = Field(pattern=r"^db\.")
    engine_version: str
    allocated_storage_gb: int = Field(ge=20)
    max_allocated_storage_gb: int = Field(ge=20)
    name: str = Field(default="orders", pattern=r"^[a-z][a-z0-9_]*$")
    username: str = Field(default="orders_admin", pattern=r"^[a-z][a-z0-9_]*$")
    backup_retention_days: int = Field(ge=1, le=35)
    performance_insights_retention_days: int = Field(default=7)
    # WAL the standby may lack before the lag alarms fire, in MiB (bytes stay right when the primary idles).
    replication_lag_max_mb: int = Field(default=64, ge=1)
    # Standby only: true once the standby's database was promoted (failover or switchover). The replica
    # source is dropped and the database is declared as a standalone primary with its own backups.
    promoted: bool = False

    @field_validator("performance_insights_retention_days")
    @classmethod
    def _pi_retention(cls, value: int) -> int:
        # AWS accepts 7 (free tier), 731, or a multiple of 31.
        if value not in (7, 731) and value % 31 != 0:
            raise ValueError("performanceInsightsRetentionDays must be 7, 731 or a multiple of 31")
        return value

    @model_validator(mode="after")
    def _storage(self) -> DatabaseConfig:
        if self.max_allocated_storage_gb < self.allocated_storage_gb:
            raise ValueError("maxAllocatedStorageGb must be at least allocatedStorageGb")
        return self


class BackupConfig(_Section):
    retention_days: int = Field(ge=1)
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    object_lock_days: int = Field(ge=1)
    infrequent_access_after_days: int = Field(default=30, ge=30)  # S3 refuses STANDARD_IA before 30 days
    glacier_after_days: int = Field(default=90, ge=1)
    prefix: str = Field(default="backups/", pattern=r"^[A-Za-z0-9._-]+/$")

    @model_validator(mode="after")
    def _ordering(self) -> BackupConfig:
        if self.object_lock_days > self.retention_days:
            raise ValueError(
                "objectLockDays must not exceed retentionDays (locked copies would outlive retention)"
            )
        # S3 rejects a lifecycle whose colder transition comes less than 30 days after STANDARD_IA.
        if self.glacier_after_days < self.infrequent_access_after_days + 30:
            raise ValueError("glacierAfterDays must be at least infrequentAccessAfterDays + 30")
        if self.glacier_after_days >= self.retention_days:
            raise ValueError("glacierAfterDays must be less than retentionDays")
        return self


class ObjectivesConfig(_Section):
    """Recovery objectives; the same names as recovery.targets.Objectives, in camelCase."""

    rto_seconds: float = Field(gt=0)
    rpo_seconds: float = Field(ge=0)
    realtime_backup_max_age_seconds: float = Field(gt=0)
    daily_backup_max_age_hours: float = Field(gt=0)
    replication_lag_max_seconds: float = Field(gt=0)
    latency_p95_ms: float = Field(default=500, gt=0)
    error_rate_max: float = Field(default=0.01, ge=0, le=1)


class StackConfig(_Section):
    site: SiteName
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    account_id: str = Field(pattern=r"^\d{12}$", description="The only account the providers may act in")
    domain_name: str = Field(pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$")
    hosted_zone_id: str = Field(pattern=r"^Z[A-Z0-9]+$")
    owner: str = Field(min_length=1)
    cost_center: str = Field(min_length=1)
    primary_stack: str | None = Field(
        default=None, description="org/project/stack of the primary (standby only)"
    )
    network: NetworkConfig
    app: AppConfig
    database: DatabaseConfig
    backup: BackupConfig
    objectives: ObjectivesConfig
    runbook_principals: tuple[str, ...] = Field(min_length=1)

    @field_validator("runbook_principals")
    @classmethod
    def _named_principals(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            if not re.match(PRINCIPAL_ARN, value):
                raise ValueError(
                    f"{value!r} is not the ARN of an IAM role or user (arn:aws:iam::ACCOUNT:role/NAME); "
                    "name the principals that run runbooks, not an account"
                )
        return values

    @model_validator(mode="after")
    def _standby_knows_primary(self) -> StackConfig:
        if self.site == "standby" and not self.primary_stack:
            raise ValueError(
                "the standby stack needs primaryStack (org/order-recovery/primary) to read outputs"
            )
        if self.site == "primary" and self.primary_stack:
            raise ValueError("primaryStack belongs to the standby stack only; remove it from the primary")
        if self.site == "primary" and self.database.promoted:
            raise ValueError(
                "database.promoted belongs to the standby stack only (the primary is never a replica)"
            )
        if self.site == "standby" and self.app.create_service_linked_role:
            raise ValueError(
                "app.createServiceLinkedRole belongs to the primary stack only (the role is account-wide)"
            )
        return self

    @property
    def is_primary(self) -> bool:
        return self.site == "primary"


def parse_stack_config(values: Mapping[str, Any]) -> StackConfig:
    """Validate raw config values (camelCase keys, without the namespace) into a StackConfig."""
    try:
        return StackConfig.model_validate(dict(values))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise StackConfigError(
            f"config {PROJECT}:{where}: {first['msg']}{more}; fix it in Pulumi.<stack>.yaml"
        ) from None


def load_stack_config() -> StackConfig:
    """Read the namespaced values of the current stack once (the only Pulumi I/O of this module)."""
    import pulumi

    config = pulumi.Config(PROJECT)
    values: dict[str, Any] = {}
    for key in SCALAR_KEYS:
        value = config.get(key)
        if value is not None:
            values[key] = value
    for key in OBJECT_KEYS:
        obj = config.get_object(key)
        if obj is not None:
            values[key] = obj
    return parse_stack_config(values)
