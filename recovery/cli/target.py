"""`recovery target`: write a target description from the Pulumi stacks' outputs, and check one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from recovery.cli.common import OutputFormat, OutputOpt, emit
from recovery.errors import ConfigError, EnvironmentProblem, UsageError
from recovery.targets import BackupStore, Target, load_target, resolve_target_path
from recovery.targets.inventory import (
    INVENTORY_SUFFIX,
    collection_installed,
    ec2_inventory,
    inventory_problems,
)
from recovery.targets.load import write_target
from recovery.targets.model import Site, SiteName
from recovery.targets.pulumi_outputs import OperatorInputs, read_stack_outputs, target_from_pulumi_outputs

app = typer.Typer(help="Write and check target descriptions.", no_args_is_help=True)

DEFAULT_STATE_ROOT = Path("/var/lib/order-recovery")


def _database(target: Target, site: SiteName) -> str:
    db = target.site(site).database
    return f"{db.kind} {db.address}:{db.port}/{db.name}"


def _store(store: BackupStore) -> str:
    return f"s3://{store.bucket}/{store.prefix} ({store.region})"


def _hosts(site: Site) -> list[str]:
    if site.discover is not None:
        tags = ", ".join(f"{key}={value}" for key, value in site.discover.tags.items())
        return [f"found at run time: running instances tagged {tags} ({site.discover.ssh_user}@)"]
    return [f"{h.name} {h.ssh_user}@{h.address}:{h.ssh_port}" for h in site.hosts]


def check_discovery(target: Target) -> None:
    """A target whose hosts are discovered needs its aws_ec2 inventory and the collection that reads it."""
    if all(site.discover is None for site in (target.primary, target.standby)):
        return
    if not target.inventory.is_file():
        raise ConfigError(
            f"the target discovers its hosts but its inventory {target.inventory} does not exist; "
            "write it with `recovery target from-pulumi`"
        )
    try:
        document = yaml.safe_load(target.inventory.read_text())
    except yaml.YAMLError:
        raise ConfigError(
            f"{target.inventory} is not valid YAML; write it again with `recovery target from-pulumi`"
        ) from None
    problems = inventory_problems(target, document)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{target.inventory}: {problems[0]}{more}")
    if not collection_installed():
        raise EnvironmentProblem(
            "the amazon.aws collection (its aws_ec2 inventory plugin) is not installed; install the "
            "`ansible` package pinned in pyproject.toml"
        )


def summarize(target: Target, path: Path) -> dict[str, Any]:
    """What `check` reports: where the target is, its sites, stores, traffic switch and objectives."""
    return {
        "path": str(path),
        "name": target.name,
        "kind": target.kind,
        "sites": {
            site.name: {
                "region": site.region,
                "hosts": _hosts(site),
                "discovered": site.discover is not None,
                "database": _database(target, site.name),
            }
            for site in (target.primary, target.standby)
        },
        "backup": {
            "local": _store(target.backup.local),
            "remote": _store(target.backup.remote),
        },
        "keys": target.keys.kind,
        "traffic": f"{target.traffic.record_name} in zone {target.traffic.hosted_zone_id}",
        "objectives": {
            "rto_seconds": target.objectives.rto_seconds,
            "rpo_seconds": target.objectives.rpo_seconds,
        },
    }


def _render_summary(summary: dict[str, Any]) -> None:
    typer.echo(f"target {summary['name']} ({summary['kind']}) is valid: {summary['path']}")
    for name, site in summary["sites"].items():
        count = "hosts found at run time" if site["discovered"] else f"{len(site['hosts'])} host(s)"
        typer.echo(f"  {name}: {site['region']}, {count}, database {site['database']}")
        for host in site["hosts"]:
            typer.echo(f"    {host}")
    typer.echo(f"  backups: local {summary['backup']['local']}, remote {summary['backup']['remote']}")
    typer.echo(f"  keys: {summary['keys']}; traffic: {summary['traffic']}")
    objectives = summary["objectives"]
    typer.echo(f"  objectives: RTO {objectives['rto_seconds']}s, RPO {objectives['rpo_seconds']}s")


@app.command("check")
def check(
    target: Annotated[str, typer.Argument(help="`lab`, a name under inventories/, or a target.yaml path")],
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Validate a target description and print what it describes."""
    path = resolve_target_path(target)
    loaded = load_target(path)
    check_discovery(loaded)
    emit(output, "target check", summarize(loaded, path), _render_summary)


@app.command("from-pulumi")
def from_pulumi(
    primary: Annotated[
        Path, typer.Option("--primary", help="`pulumi stack output --json` of the primary stack")
    ],
    standby: Annotated[
        Path, typer.Option("--standby", help="`pulumi stack output --json` of the standby stack")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="where to write the target, e.g. inventories/production/target.yaml")
    ],
    ssh_user: Annotated[str, typer.Option("--ssh-user", help="the controller's SSH user on the order hosts")],
    primary_host: Annotated[
        list[str] | None,
        typer.Option(
            "--primary-host",
            help="address of a primary order host (repeat for each); default: found by tags at run time",
        ),
    ] = None,
    standby_host: Annotated[
        list[str] | None,
        typer.Option(
            "--standby-host",
            help="address of a standby order host (repeat for each); default: found by tags at run time",
        ),
    ] = None,
    ssh_key: Annotated[
        Path | None, typer.Option("--ssh-key", help="the controller's private key file")
    ] = None,
    known_hosts: Annotated[
        Path | None, typer.Option("--known-hosts", help="known_hosts of the order hosts")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="the target's name")] = "production",
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="journals and locks (default /var/lib/order-recovery/NAME)"),
    ] = None,
    inventory: Annotated[
        Path | None,
        typer.Option("--inventory", help="the Ansible inventory (default: aws_ec2.yml beside --out)"),
    ] = None,
    base_dir: Annotated[
        Path, typer.Option("--base-dir", help="the order service's directory on the hosts")
    ] = Path("/srv/order-service"),
    db_passfile: Annotated[
        Path | None, typer.Option("--db-passfile", help="pgpass file for the databases")
    ] = None,
    aws_profile: Annotated[
        str | None, typer.Option("--aws-profile", help="AWS profile the toolkit uses")
    ] = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Write a target description from the primary's and the standby's stack outputs."""
    operator = OperatorInputs(
        primary_hosts=tuple(primary_host or ()),
        standby_hosts=tuple(standby_host or ()),
        ssh_user=ssh_user,
        ssh_key=ssh_key,
        known_hosts=known_hosts,
        target_name=name,
        state_dir=state_dir if state_dir is not None else DEFAULT_STATE_ROOT / name,
        inventory=inventory if inventory is not None else out.parent / "aws_ec2.yml",
        service_base_dir=base_dir,
        db_passfile=db_passfile,
        aws_profile=aws_profile,
    )
    target = target_from_pulumi_outputs(read_stack_outputs(primary), read_stack_outputs(standby), operator)
    discovering = target.primary.discover is not None or target.standby.discover is not None
    if discovering and not operator.inventory.name.endswith(INVENTORY_SUFFIX):
        raise UsageError(
            f"--inventory {operator.inventory} must end in {INVENTORY_SUFFIX}: "
            "the aws_ec2 plugin reads only such files"
        )
    try:
        if discovering:
            # The aws_ec2 plugin configuration and the group variables beside it, before the target.
            ec2_inventory(target).write(target.inventory.parent, target.inventory.name)
        write_target(target, out)
    except OSError as exc:
        raise UsageError(f"cannot write {out} ({exc.strerror}); choose a writable --out path") from None
    emit(
        output,
        "target from-pulumi",
        {"path": str(out), **summarize(target, out)},
        lambda result: typer.echo(
            f"wrote target {result['name']} to {result['path']}; "
            f"check it with `recovery target check {result['path']}`"
        ),
    )
