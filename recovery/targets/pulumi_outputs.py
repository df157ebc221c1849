"""Turn the two stacks' outputs (`pulumi stack output --json`) into a target description.

`target_from_pulumi_outputs` is pure: the primary's and the standby's output mappings plus what only the
operator knows (SSH user and key, host addresses, local paths) give a validated `Target`. The output names
are the contract with the Pulumi program (infra/order_infra/outputs.py; the mapping is in docs/deploy.md).
`read_stack_outputs` is the one I/O helper: it reads a saved `pulumi stack output --json` file.

Either site may be the writable one: after a failover the standby stack declares its database promoted
(`dbRole: primary`). The site names stay those of the stacks; what follows the writable site is the key
the backups are wrapped with (its region's copy of the multi-region key), the local backup copy, the intake
queue and the topics, so a target written after a failover works without the lost region.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from recovery.errors import ConfigError, UsageError
from recovery.targets.model import (
    AwsEndpoint,
    BackupStore,
    BackupStores,
    Database,
    Host,
    HostDiscovery,
    KeySource,
    LoadBalancer,
    LockTable,
    Objectives,
    Site,
    SiteName,
    Target,
    Traffic,
)

# The outputs each stack must export for a target to be written from it.
REQUIRED_OUTPUTS = (
    "site",
    "region",
    "servicePort",
    "dbInstanceIdentifier",
    "dbAddress",
    "dbPort",
    "dbName",
    "dbUsername",
    "kmsKeyArn",
    "backupBucketName",
    "backupPrefix",
    "intakeQueueUrl",
    "teamTopicArn",
    "customerTopicArn",
    "hostedZoneId",
    "recordName",
    "frontDoorUrl",
    "objectives",
    "lockTableName",
    "lockTableRegion",
    # The failover records are aliases to these: the traffic move names them (recovery/failover/traffic.py).
    "loadBalancerArn",
    "loadBalancerDnsName",
    "loadBalancerZoneId",
)

# Which database a stack declares: a writable primary, or a replica of the other site's.
DB_ROLE_OUTPUT = "dbRole"
WRITABLE = "primary"

# The writable site's RDS-managed master secret (a replica has none and uses its source's).
MASTER_SECRET_OUTPUT = "dbMasterSecretArn"  # noqa: S105 - an output name
# The tags every order host carries (infra/order_infra/tags.py and the auto scaling group's `role`).
PROJECT_TAG = {"project": "order-recovery"}
HOST_ROLE_TAG = {"role": "order-service"}

# Where the recovery controller connects from (the stack's network.adminCidrs): the RDS fence admits these.
ADMIN_CIDRS_OUTPUT = "adminCidrs"

# Pulumi prints this in place of a secret output unless --show-secrets is given.
REDACTED_OUTPUT = "[secret]"
_HOST_ADDRESS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.:-]*\Z")


@dataclass(frozen=True)
class OperatorInputs:
    """What the stacks cannot know: how the controller reaches the hosts and where it keeps its state.

    The order hosts live in auto scaling groups: with no addresses given, a site's hosts are found at run
    time by their tags (`HostDiscovery`); addresses given pin the site to those hosts.
    """

    ssh_user: str
    state_dir: Path
    inventory: Path
    primary_hosts: tuple[str, ...] = ()
    standby_hosts: tuple[str, ...] = ()
    target_name: str = "production"
    ssh_key: Path | None = None
    known_hosts: Path | None = None
    service_base_dir: Path = Path("/srv/order-service")
    db_passfile: Path | None = None
    aws_profile: str | None = None


def _require(outputs: Mapping[str, Any], label: str) -> None:
    missing = [name for name in REQUIRED_OUTPUTS if name not in outputs]
    if missing:
        raise ConfigError(
            f"{label} stack outputs lack {', '.join(missing)}; export them again with "
            f"`pulumi stack output --json --stack {label} > {label}.json` after `pulumi up`"
        )
    hidden = [name for name in REQUIRED_OUTPUTS if outputs[name] == REDACTED_OUTPUT]
    if hidden:
        raise ConfigError(
            f"{label} stack outputs hide {', '.join(hidden)} as [secret]; these must be plain outputs"
        )
    if outputs["site"] != label:
        raise ConfigError(
            f"the file given as the {label} stack's outputs holds site {outputs['site']!r}; "
            f"pass the {label} stack's `pulumi stack output --json`"
        )


def host_tags(site: SiteName) -> dict[str, str]:
    """The tags that single out a site's order hosts."""
    return {**PROJECT_TAG, "site": site, **HOST_ROLE_TAG}


def _discovery(site: SiteName, operator: OperatorInputs, port: int) -> HostDiscovery:
    return HostDiscovery(
        tags=host_tags(site),
        ssh_user=operator.ssh_user,
        ssh_key=operator.ssh_key,
        known_hosts=operator.known_hosts,
        base_dir=operator.service_base_dir,
        service_port=port,
    )


def _hosts(
    site: SiteName, addresses: tuple[str, ...], operator: OperatorInputs, port: int
) -> tuple[Host, ...]:
    hosts = []
    for index, address in enumerate(addresses, start=1):
        if not _HOST_ADDRESS.match(address):
            raise UsageError(f"{site} host address {address!r} is not a host name or IP address")
        hosts.append(
            Host(
                name=f"{site}-app-{index}",
                address=address,
                ssh_user=operator.ssh_user,
                ssh_key=operator.ssh_key,
                known_hosts=operator.known_hosts,
                base_dir=operator.service_base_dir,
                service_port=port,
            )
        )
    return tuple(hosts)


def _master_secret(site: SiteName, outputs: Mapping[str, Any], primary: Mapping[str, Any]) -> str | None:
    """The site's own master secret once it is writable, else its source's (the primary's)."""
    own = outputs.get(MASTER_SECRET_OUTPUT)
    if own and own != REDACTED_OUTPUT:
        return str(own)
    source = primary.get(MASTER_SECRET_OUTPUT) if site == "standby" else None
    return str(source) if source and source != REDACTED_OUTPUT else None


def _admin_cidrs(site: SiteName, outputs: Mapping[str, Any]) -> tuple[str, ...]:
    """The controller's CIDRs the site's fence admits; none when an older stack does not export them."""
    raw = outputs.get(ADMIN_CIDRS_OUTPUT, [])
    try:
        if isinstance(raw, str) or not all(isinstance(cidr, str) for cidr in raw):
            raise ValueError(raw)
        return tuple(str(ipaddress.ip_network(cidr)) for cidr in raw)
    except (TypeError, ValueError):
        raise ConfigError(
            f"the {site} stack's {ADMIN_CIDRS_OUTPUT} output is not a list of CIDRs; "
            "export the outputs again after `pulumi up`"
        ) from None


def _site(
    site: SiteName, outputs: Mapping[str, Any], operator: OperatorInputs, primary: Mapping[str, Any]
) -> Site:
    addresses = operator.primary_hosts if site == "primary" else operator.standby_hosts
    port = int(outputs["servicePort"])
    return Site(
        name=site,
        region=str(outputs["region"]),
        hosts=_hosts(site, addresses, operator, port),
        discover=None if addresses else _discovery(site, operator, port),
        database=Database(
            kind="rds",
            address=str(outputs["dbAddress"]),
            port=int(outputs["dbPort"]),
            name=str(outputs["dbName"]),
            user=str(outputs["dbUsername"]),
            passfile=operator.db_passfile,
            rds_instance_id=str(outputs["dbInstanceIdentifier"]),
            master_secret_arn=_master_secret(site, outputs, primary),
            fence_admit=_admin_cidrs(site, outputs),
        ),
        load_balancer=_load_balancer(outputs),
    )


def _load_balancer(outputs: Mapping[str, Any]) -> LoadBalancer:
    """The site's load balancer, the alias target its failover record names."""
    return LoadBalancer(
        arn=str(outputs["loadBalancerArn"]),
        dns_name=str(outputs["loadBalancerDnsName"]),
        hosted_zone_id=str(outputs["loadBalancerZoneId"]),
    )


def _objectives(raw: Any) -> Objectives:
    if not isinstance(raw, Mapping):
        raise ConfigError(
            "the primary's `objectives` output is not a mapping; run `pulumi up` with this version"
        )
    names = {
        "rtoSeconds": "rto_seconds",
        "rpoSeconds": "rpo_seconds",
        "realtimeBackupMaxAgeSeconds": "realtime_backup_max_age_seconds",
        "dailyBackupMaxAgeHours": "daily_backup_max_age_hours",
        "replicationLagMaxSeconds": "replication_lag_max_seconds",
        "latencyP95Ms": "latency_p95_ms",
        "errorRateMax": "error_rate_max",
    }
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"the `objectives` output has unknown fields {', '.join(unknown)}")
    return Objectives.model_validate({names[key]: value for key, value in raw.items()})


def writable_site(primary: Mapping[str, Any], standby: Mapping[str, Any]) -> SiteName:
    """The site whose database takes writes: the standby once its stack declares it promoted.

    The primary stack always declares a writable database, so after a failover both say so until the old
    primary is rebuilt as a replica; the promotion is the later fact and wins.
    """
    for label, outputs in (("primary", primary), ("standby", standby)):
        role = outputs.get(DB_ROLE_OUTPUT, WRITABLE if label == "primary" else "replica")
        if role not in (WRITABLE, "replica"):
            raise ConfigError(
                f"the {label} stack's {DB_ROLE_OUTPUT} output is {role!r}, not primary or replica; "
                "export the outputs again after `pulumi up`"
            )
    return "standby" if standby.get(DB_ROLE_OUTPUT) == WRITABLE else "primary"


def target_from_pulumi_outputs(
    primary: Mapping[str, Any], standby: Mapping[str, Any], operator: OperatorInputs
) -> Target:
    """Build the target of an AWS deployment from both stacks' outputs and the operator's inputs."""
    _require(primary, "primary")
    _require(standby, "standby")
    writable = writable_site(primary, standby)
    active, other = (primary, standby) if writable == "primary" else (standby, primary)
    for shared in ("hostedZoneId", "recordName"):
        if primary[shared] != standby[shared]:
            raise ConfigError(
                f"the stacks disagree on {shared} ({primary[shared]!r} vs {standby[shared]!r}); "
                "both sites must share one failover record"
            )
    if primary["region"] == standby["region"]:
        raise ConfigError(f"both stacks are in {primary['region']}; the standby must be in another region")
    try:
        return Target(
            name=operator.target_name,
            kind="aws",
            state_dir=operator.state_dir,
            inventory=operator.inventory,
            aws=AwsEndpoint(profile=operator.aws_profile),
            primary=_site("primary", primary, operator, primary),
            standby=_site("standby", standby, operator, primary),
            # The local copy is the writable site's bucket, the remote one the other site's.
            backup=BackupStores(
                local=BackupStore(
                    bucket=str(active["backupBucketName"]),
                    region=str(active["region"]),
                    prefix=str(active["backupPrefix"]),
                ),
                remote=BackupStore(
                    bucket=str(other["backupBucketName"]),
                    region=str(other["region"]),
                    prefix=str(other["backupPrefix"]),
                ),
            ),
            # One multi-region key: each region's copy unwraps what the other wrapped, so the writable
            # site's own copy is used and a lost region is never needed.
            keys=KeySource(kind="kms", kms_key_id=str(active["kmsKeyArn"]), region=str(active["region"])),
            traffic=Traffic(
                hosted_zone_id=str(primary["hostedZoneId"]),
                record_name=str(primary["recordName"]),
                front_door_url=str(primary["frontDoorUrl"]),
            ),
            objectives=_objectives(active["objectives"]),
            intake_queue_url=str(active["intakeQueueUrl"]),
            team_topic_arn=str(active["teamTopicArn"]),
            customer_topic_arn=str(active["customerTopicArn"]),
            # One global table; the lease is written in the writable site's region (docs/deploy.md).
            lock_table=LockTable(name=str(active["lockTableName"]), region=str(active["lockTableRegion"])),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(
            f"the stacks' outputs give an invalid target field {field}: {first['msg']}"
        ) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"a stack output has the wrong type ({exc}); export the outputs again") from None


def read_stack_outputs(path: Path) -> dict[str, Any]:
    """Read a file written by `pulumi stack output --json`."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(
            f"{path} does not exist; write it with `pulumi stack output --json --stack <stack> > {path}`"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot read {path} ({exc.strerror}); check the path and its permissions") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is not JSON (line {exc.lineno}); save `pulumi stack output --json` as is"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds no mapping of outputs; save `pulumi stack output --json` as is")
    return data
