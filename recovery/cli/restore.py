"""`recovery restore`: restore domains from their backups beside live, verify, swap; prune replaced copies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from recovery.backup.naming import parse_domain
from recovery.cli.commands import check_runbook
from recovery.cli.common import (
    DryRunOpt,
    OutputFormat,
    OutputOpt,
    TargetOpt,
    YesOpt,
    emit,
)
from recovery.cli.runs import render_plan, run_runbook
from recovery.engine import Engine
from recovery.restore.choose import new_restore_id
from recovery.restore.scope import DEFAULT_SCOPE_POLICY
from recovery.runbooks.restore import (
    after_target_plan,
    prune_replaced_params,
    prune_replaced_runbook,
    restore_params,
    restore_runbook,
    scope_plan,
    set_aside_in,
)
from recovery.targets import Target, load_target

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
    scope: Annotated[
        str,
        typer.Option(
            "--scope",
            help="when rows of a domain kept from live reference rows newer than a restored domain's "
            "backup: strict refuses and names the scope that works, widen restores those domains too",
        ),
    ] = DEFAULT_SCOPE_POLICY,
    carry: Annotated[
        bool,
        typer.Option(
            "--carry-over/--set-aside",
            help="rows of the restored domains written after the backups' moment: carried over (orders "
            "that do not match their lines are listed for a person) or set aside in the replaced database",
        ),
    ] = True,
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
    now = datetime.now(UTC)
    params = restore_params(
        chosen, at=at, point=point, restore_id=new_restore_id(now), scope=scope, carry_over=carry, now=now
    )
    if dry_run:
        _dry_run(loaded, params, output)
        return
    run_runbook(loaded, restore_runbook(loaded, params), command="restore", output=output, yes=yes)


def _dry_run(loaded: Target, params: dict[str, object], output: OutputFormat) -> None:
    """The plan, with what the scope step would decide now: the scope, the backups it would use and the
    rows written after their moment it would carry over or set aside. Reads only; a scope that would be
    refused is refused here with the same line."""
    planned = scope_plan(loaded, params, lambda message: None)
    decided = {**params, "domains": list(planned.decision.domains)}
    runbook = restore_runbook(loaded, decided)
    check_runbook("restore", runbook)
    plan = Engine(loaded).plan(runbook)
    replaced = set_aside_in(loaded.writable.database.name, str(params["restore_id"]))
    preview = {
        "scope": planned.decision.to_json(),
        "backups": [
            {"domain": c.domain, "backup_id": c.backup_id, "kind": c.kind, "copy": c.copy, "reason": c.reason}
            for c in planned.selection.choices
        ],
        "after_target": [item.to_json() for item in planned.findings.after],
        "after_target_rows": planned.findings.after_rows,
        "to_person": planned.findings.to_person,
        "after_target_plan": after_target_plan(planned, params, replaced),
        "notes": list(planned.findings.notes),
    }

    def text(_: object) -> None:
        render_plan(plan)
        typer.echo(f"scope: {planned.decision.reason}")
        for choice in planned.selection.choices:
            typer.echo(f"backup: {choice.domain}: {choice.backup_id} ({choice.kind}, {choice.copy} copy)")
        typer.echo(f"after the backups' moment: {preview['after_target_plan']}")
        for note in planned.findings.notes:
            typer.echo(f"note: {note}")

    emit(output, "restore", {**plan.to_json(), "preview": preview}, text)


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
