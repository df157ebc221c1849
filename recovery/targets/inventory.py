"""The Ansible inventory of a target whose hosts come and go: the amazon.aws.aws_ec2 plugin keyed by tags.

`ec2_inventory` writes what Ansible reads (pure documents): the plugin's configuration (`aws_ec2.yml`:
both sites' regions, the tags every order host carries, running instances only, the private address as
`ansible_host`, groups `app`, `primary` and `standby`), and the group variables the roles need
(`group_vars/all.yml` and one file per site: its database endpoint). `inventory_problems` checks a
written inventory against its target and the installed collection.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recovery.targets.model import Site, Target

EC2_PLUGIN = "amazon.aws.aws_ec2"
# The plugin reads a configuration file only when its name ends so.
INVENTORY_SUFFIX = "aws_ec2.yml"
# Where the hosts' boot (infra/order_infra/host_bootstrap.py) writes the service's passfile.
HOST_SERVICE_PASSFILE = "/etc/orderservice/pgpass"
SERVICE_DB_USER = "orders"


@dataclass(frozen=True)
class InventoryFiles:
    """Relative path -> YAML document."""

    documents: Mapping[str, Any]

    def write(self, directory: Path, inventory_name: str) -> None:
        for relative, document in self.documents.items():
            path = directory / (inventory_name if relative == INVENTORY_SUFFIX else relative)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(yaml.safe_dump(document, sort_keys=False))
            tmp.replace(path)


def _shared_tags(target: Target) -> dict[str, str]:
    """The tags both sites' hosts carry (all of them but `site`)."""
    sites = [site.discover for site in (target.primary, target.standby) if site.discover is not None]
    shared = dict(sites[0].tags) if sites else {}
    for discover in sites[1:]:
        shared = {key: value for key, value in shared.items() if discover.tags.get(key) == value}
    return {key: value for key, value in shared.items() if key != "site"}


def _site_vars(site: Site) -> dict[str, Any]:
    db = site.database
    return {"order_site": site.name, "order_db_host": db.address, "order_db_port": db.port}


def ec2_inventory(target: Target) -> InventoryFiles:
    """The plugin configuration and group variables for a target whose sites discover their hosts."""
    discovering = [site for site in (target.primary, target.standby) if site.discover is not None]
    if not discovering:
        raise ValueError("no site of this target discovers its hosts")
    first = discovering[0].discover
    assert first is not None
    filters: dict[str, Any] = {f"tag:{key}": value for key, value in _shared_tags(target).items()}
    filters["tag:site"] = [site.name for site in discovering]
    filters["instance-state-name"] = "running"
    groups: dict[str, str] = {"app": "True"}
    groups.update({site.name: f"tags.site == '{site.name}'" for site in discovering})
    plugin: dict[str, Any] = {
        "plugin": EC2_PLUGIN,
        "regions": sorted({site.region for site in discovering}),
        "filters": filters,
        # primary-i-0abc...: the site, then the instance id (stable while the instance lives).
        "hostnames": [{"name": "instance-id", "prefix": "tag:site", "separator": "-"}],
        "compose": {"ansible_host": "private_ip_address"},
        "groups": groups,
        "strict": True,
    }
    # The plugin reaches AWS as the toolkit does: the target's profile and endpoint, when it names them.
    if target.aws.profile is not None:
        plugin["profile"] = target.aws.profile
    if target.aws.endpoint_url is not None:
        plugin["endpoint_url"] = target.aws.endpoint_url
    everyone: dict[str, Any] = {
        "ansible_user": first.ssh_user,
        "ansible_python_interpreter": "/usr/bin/python3",
        "order_service_supervisor": "systemd",
        "order_service_base_dir": str(first.base_dir),
        "order_service_listen": "0.0.0.0",  # noqa: S104 - the hosts' security group admits only the lb
        "order_service_port": first.service_port,
        "order_db_name": target.primary.database.name,
        "order_db_user": SERVICE_DB_USER,
        "order_db_passfile": HOST_SERVICE_PASSFILE,
    }
    if first.ssh_key is not None:
        everyone["ansible_ssh_private_key_file"] = str(first.ssh_key)
    if first.known_hosts is not None:
        everyone["ansible_ssh_common_args"] = f"-o UserKnownHostsFile={first.known_hosts}"
    documents: dict[str, Any] = {INVENTORY_SUFFIX: plugin, "group_vars/all.yml": everyone}
    for site in discovering:
        documents[f"group_vars/{site.name}.yml"] = _site_vars(site)
    return InventoryFiles(documents)


def collection_installed() -> bool:
    """The amazon.aws collection the `ansible` package bundles, with its aws_ec2 inventory plugin."""
    spec = importlib.util.find_spec("ansible_collections.amazon.aws")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(
        (Path(location) / "plugins" / "inventory" / "aws_ec2.py").is_file()
        for location in spec.submodule_search_locations
    )


def inventory_problems(target: Target, document: Any) -> list[str]:
    """What is wrong with an aws_ec2 inventory for `target`, each as a sentence; empty when it fits. Pure."""
    if not isinstance(document, dict) or document.get("plugin") != EC2_PLUGIN:
        return [
            f"{target.inventory} does not configure the {EC2_PLUGIN} plugin; "
            "write it with `recovery target from-pulumi`"
        ]
    problems = []
    if not target.inventory.name.endswith(INVENTORY_SUFFIX):
        problems.append(f"{target.inventory.name} must end in {INVENTORY_SUFFIX} for the plugin to read it")
    regions = set(document.get("regions") or ())
    filters = document.get("filters") or {}
    groups = document.get("groups") or {}
    for site in (target.primary, target.standby):
        if site.discover is None:
            continue
        if site.region not in regions:
            problems.append(f"the inventory does not search {site.region}, the {site.name} site's region")
        for key, value in site.discover.tags.items():
            wanted = filters.get(f"tag:{key}")
            if value != wanted and not (isinstance(wanted, list) and value in wanted):
                problems.append(f"the inventory does not filter on tag {key}={value} ({site.name} hosts)")
        if site.name not in groups:
            problems.append(f"the inventory puts no host in group {site.name}")
    if "app" not in groups:
        problems.append("the inventory has no group app")
    return problems
