"""`recovery restore`: restore domains from their backups beside live, verify, swap; prune replaced copies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from recovery.backup.naming import parse_domain
from recovery.cli.common import (
    DryRunOpt,
    OutputFormat,
    OutputOpt,
    TargetOpt,
    YesOpt,
    emit,
)
from recovery.cli.runs import run_runbook
from recovery.restore.choose import new_restore_id
from recovery.runbooks.restore import (
    prune_replaced_params,
    prune_replaced_runbook,
    restore_params,
    restore_runbook,
)
from recovery.targets import load_target

app = typer.Typer(
    help="Restore domains from backups beside live, verify, then swap in.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@app.callback(invoke_without_command=True)
def restore(
    context: typer.Context,
    domains: Annotated[
        str | None, typer.Option("--domains", help="comma-separated, e.g. orders,transactions")
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="restore to this time (ISO 8601 with zone)")] = None,
    point: Annotated[str | None, typer.Option("--point", help="restore to this named restore point")] = None,
    target: TargetOpt = "lab",
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Restore --domains to a time or restore point (default: the newest backup)."""
    if context.invoked_subcommand is not None:
        return
    if domains is None:
        typer.echo(context.get_help())
        raise typer.Exit(2)
    chosen = [parse_domain(part.strip()) for part in domains.split(",") if part.strip()]
    loaded = load_target(target)
    params = restore_params(chosen, at=at, point=point, restore_id=new_restore_id(datetime.now(UTC)))
    run_runbook(
        loaded, restore_runbook(loaded, params), command="restore", output=output, dry_run=dry_run, yes=yes
    )


@app.command("prune-replaced")
def prune_replaced(
    target: TargetOpt = "lab",
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Drop the databases restores replaced (the way back after a restore): needs --yes. A database a
    running or interrupted run still needs is kept."""
    loaded = load_target(target)
    params = prune_replaced_params(loaded)
    if not params["restore_ids"]:  # nothing to drop: nothing to confirm, lock or journal
        emit(output, "restore prune-replaced", {"dropped": []}, lambda _: typer.echo("no replaced databases"))
        return
    runbook = prune_replaced_runbook(loaded, params)
    run_runbook(loaded, runbook, command="restore prune-replaced", output=output, dry_run=dry_run, yes=yes)
