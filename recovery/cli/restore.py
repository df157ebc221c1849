"""`recovery restore`: restore domains from their backups beside live, verify, swap; prune replaced copies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from recovery.backup.naming import parse_domain
from recovery.cli.common import (
    DryRunOpt,
    OutputFormat,
    OutputOpt,
    TargetOpt,
    YesOpt,
    confirm_destructive,
    emit,
)
from recovery.cli.runs import run_runbook
from recovery.drivers.db import conninfo
from recovery.restore.database import drop_replaced
from recovery.runbooks.restore import new_restore_id, replaced_databases, restore_params, restore_runbook
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
    target: TargetOpt = "lab", yes: YesOpt = False, output: OutputOpt = OutputFormat.text
) -> None:
    """Drop the databases restores replaced (the way back after a restore): needs --yes."""
    loaded = load_target(target)
    ids = replaced_databases(loaded)
    live = loaded.primary.database.name
    if ids:
        confirm_destructive(f"dropping {len(ids)} replaced copies of {live} removes the way back", yes)
    admin = conninfo(loaded.primary.database, dbname="postgres")
    dropped = [
        restore_id
        for restore_id in ids
        if drop_replaced(admin, live_db=live, restore_id=restore_id, confirmed=True)
    ]

    def text(_: Any) -> None:
        typer.echo(
            f"dropped {len(dropped)} replaced databases" + (f": {', '.join(dropped)}" if dropped else "")
        )

    emit(output, "restore prune-replaced", {"dropped": [f"{live}_replaced_{i}" for i in dropped]}, text)
