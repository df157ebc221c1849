"""The target as a run sees it: what an AWS target leaves to run time, resolved when the run starts.

- Hosts that come and go: a site that `discover`s its hosts gets the running instances carrying its tags
  (the same tags the aws_ec2 inventory plugin filters on), named `<site>-<instance id>`.
- RDS credentials: a database with a `master_secret_arn` and no passfile gets a passfile for the run,
  written from the secret read now (`recovery.drivers.secrets`), removed when the run ends.

Self-managed and lab targets pass through unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from recovery.drivers.aws import AwsDriver
from recovery.drivers.ec2 import Instance, running_instances
from recovery.drivers.secrets import read_credentials, run_time_passfile
from recovery.errors import PreconditionFailed
from recovery.targets.model import Database, Host, HostDiscovery, Site, Target


def hosts_of(site_name: str, discover: HostDiscovery, instances: list[Instance]) -> tuple[Host, ...]:
    """The hosts of a site from its running instances. Pure."""
    return tuple(
        Host(
            name=f"{site_name}-{instance.instance_id.lower()}",
            address=instance.private_ip,
            ssh_user=discover.ssh_user,
            ssh_key=discover.ssh_key,
            known_hosts=discover.known_hosts,
            base_dir=discover.base_dir,
            service_port=discover.service_port,
        )
        for instance in instances
    )


def _discovered(site: Site, aws: AwsDriver) -> Site:
    if site.discover is None or site.hosts:
        return site
    instances = running_instances(aws, site.region, site.discover.tags)
    if not instances:
        tags = ", ".join(f"{key}={value}" for key, value in site.discover.tags.items())
        raise PreconditionFailed(
            f"no running instance in {site.region} carries the {site.name} site's tags ({tags}); "
            "check the auto scaling group; nothing was changed"
        )
    return site.model_copy(update={"hosts": hosts_of(site.name, site.discover, instances)})


def _needs_secret(database: Database) -> bool:
    return database.kind == "rds" and database.passfile is None and database.master_secret_arn is not None


@contextlib.contextmanager
def run_time_target(target: Target, aws: AwsDriver | None = None) -> Iterator[Target]:
    """`target` with discovered hosts and RDS passfiles filled in for the length of the block."""
    sites = (target.primary, target.standby)
    if all(site.discover is None and not _needs_secret(site.database) for site in sites):
        yield target
        return
    driver = aws or AwsDriver(target.aws)
    resolved = {site.name: _discovered(site, driver) for site in sites}
    with contextlib.ExitStack() as passfiles:
        for site in sites:
            database = site.database
            if not _needs_secret(database):
                continue
            assert database.master_secret_arn is not None
            # A replica's secret lives in its source's region (the secret's ARN names it).
            region = database.master_secret_arn.split(":")[3] or site.region
            credentials = read_credentials(driver, region, database.master_secret_arn)
            path = passfiles.enter_context(
                run_time_passfile(credentials, [(database.address, database.port)])
            )
            updated = database.model_copy(update={"passfile": path, "user": credentials.username})
            resolved[site.name] = resolved[site.name].model_copy(update={"database": updated})
        yield target.model_copy(update={"primary": resolved["primary"], "standby": resolved["standby"]})
