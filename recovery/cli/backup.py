"""`recovery backup`: run, list, verify, prune (backups and realtime WAL) and restore points."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from recovery.backup.catalog import CatalogEntry, catalog_for
from recovery.backup.freshness import stale_backups
from recovery.backup.naming import DOMAINS, Domain, parse_domain, parse_kind
from recovery.backup.prune import plan_prune
from recovery.backup.retention import RetentionPolicy
from recovery.cli.backup_realtime import realtime, setup_archiving
from recovery.cli.common import (
    DryRunOpt,
    OutputFormat,
    OutputOpt,
    TargetOpt,
    YesOpt,
    emit,
    envelope,
)
from recovery.cli.runs import run_runbook
from recovery.cli.wal_ship import ship
from recovery.errors import UsageError, VerificationFailed
from recovery.runbooks.backup import backup_params, backup_runbook, prune_params, prune_runbook
from recovery.targets import load_target
from recovery.verify.scratch import deep_checker

app = typer.Typer(
    help="Encrypted two-copy backups: run, list, verify, prune, restore points.", no_args_is_help=True
)

# Realtime backups: ship the archived WAL segments to both copies (once, or --follow).
app.command("ship")(ship)
# Realtime base backups and the archiving they need (what the watch schedules), on demand.
app.command("realtime")(realtime)
app.command("setup-archiving")(setup_archiving)

DomainOpt = Annotated[list[str] | None, typer.Option("--domain", "-d", help="a domain (repeat); default all")]


def _domains(values: list[str] | None) -> list[Domain]:
    return [parse_domain(value) for value in values or []] or list(DOMAINS)


def _entry_json(entry: CatalogEntry) -> dict[str, Any]:
    manifest = entry.manifest
    return {
        "backup_id": entry.backup_id,
        "domain": entry.domain,
        "kind": entry.kind,
        "position": manifest.source.at.isoformat() if manifest else None,
        "restore_point": manifest.source.restore_point if manifest else None,
        "stored_bytes": manifest.sizes.stored if manifest else None,
        "local": {"state": str(entry.local.state), "detail": entry.local.detail},
        "remote": {"state": str(entry.remote.state), "detail": entry.remote.detail},
        "counts": entry.counts,
    }


def _render_entries(rows: list[dict[str, Any]]) -> None:
    if not rows:
        typer.echo("no backups")
        return
    typer.echo(f"{'BACKUP':<34} {'TAKEN AT':<33} {'LOCAL COPY':<15} REMOTE COPY")
    for row in rows:
        point = f"  point {row['restore_point']}" if row["restore_point"] else ""
        typer.echo(
            f"{row['backup_id']:<34} {row['position'] or '-':<33} local {row['local']['state']:<9} "
            f"remote {row['remote']['state']:<9}{point}"
        )
        for label in ("local", "remote"):
            if row[label]["state"] in ("damaged", "unreachable"):
                typer.echo(f"    {label}: {row[label]['detail']}")


@app.command("run")
def run(
    domain: DomainOpt = None,
    kind: Annotated[str, typer.Option("--kind", help="daily (realtime backups run continuously)")] = "daily",
    target: TargetOpt = "lab",
    output: OutputOpt = OutputFormat.text,
    dry_run: DryRunOpt = False,
) -> None:
    """Back up domains (default all) in one snapshot into both encrypted copies."""
    if parse_kind(kind) != "daily":
        raise UsageError("`backup run` takes daily backups; realtime backups are continuous (WAL archiving)")
    loaded = load_target(target)
    runbook = backup_runbook(loaded, backup_params(_domains(domain)))
    run_runbook(loaded, runbook, command="backup run", output=output, dry_run=dry_run)


@app.command("point")
def point(
    name: Annotated[str, typer.Argument(help="the restore point's name, e.g. before-v2")],
    target: TargetOpt = "lab",
    output: OutputOpt = OutputFormat.text,
    dry_run: DryRunOpt = False,
) -> None:
    """A named restore point: a consistent backup of all domains tagged with NAME (before an upgrade)."""
    loaded = load_target(target)
    runbook = backup_runbook(loaded, backup_params(list(DOMAINS), name))
    run_runbook(loaded, runbook, command="backup point", output=output, dry_run=dry_run)


@app.command("list")
def list_backups(
    domain: DomainOpt = None, target: TargetOpt = "lab", output: OutputOpt = OutputFormat.text
) -> None:
    """Every backup in either copy, with each copy's state (not verified by this command)."""
    catalog = catalog_for(load_target(target), with_keys=False)
    wanted = set(_domains(domain))
    rows = [_entry_json(entry) for entry in catalog.entries() if entry.domain in wanted]
    emit(output, "backup list", {"backups": rows}, lambda _: _render_entries(rows))


@app.command("verify")
def verify(
    backup_id: Annotated[str | None, typer.Argument(help="one backup id; omit with --all")] = None,
    all_: Annotated[bool, typer.Option("--all", help="verify every backup")] = False,
    deep: Annotated[bool, typer.Option("--deep", help="decrypt, decompress and check contents")] = False,
    target: TargetOpt = "lab",
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Verify copies against their manifests; fails when a copy is damaged or a domain's backups are stale."""
    if (backup_id is None) == (not all_):
        raise UsageError("give one backup id or --all")
    loaded = load_target(target)
    catalog = catalog_for(loaded, with_keys=deep)
    if backup_id is not None and backup_id not in {entry.backup_id for entry in catalog.entries()}:
        # An id that names no backup is a typo, not a failed verification.
        raise UsageError(
            f"no backup {backup_id} in either copy of {loaded.name}; `recovery backup list --target "
            f"{target}` lists the backup ids",
            code="backup.unknown_id",
        )
    checker = deep_checker(loaded) if deep else None
    try:
        if backup_id is not None:
            entries = [catalog.verify(backup_id, deep=deep, checker=checker)]
        else:
            entries = catalog.verify_all(deep=deep, checker=checker)
    finally:
        if checker is not None:
            checker.close()
    rows = [_entry_json(entry) for entry in entries]
    stale = stale_backups(entries, loaded.objectives, datetime.now(UTC)) if all_ else []
    stale = [finding for finding in stale if finding.kind == "daily"]
    result = {"backups": rows, "stale": [finding.reason for finding in stale]}

    def text(_: Any) -> None:
        _render_entries(rows)
        if deep:
            typer.echo(
                f"deep: {len(rows)} backups decrypted and decompressed whole: each dump loaded into a "
                "throw-away database and its tables fingerprinted against the manifest, host files hashed"
            )
        for finding in stale:
            typer.echo(f"stale: {finding.reason}")

    damaged = [row for row in rows if not row["counts"]]
    failure: VerificationFailed | None = None
    if damaged:
        row = damaged[0]
        failure = VerificationFailed(
            f"{row['backup_id']} does not count: local {row['local']['state']}, remote "
            f"{row['remote']['state']}; run `recovery backup list` and take a new backup"
        )
    elif stale:
        failure = VerificationFailed(f"{stale[0].reason}; run `recovery backup run`", code="backup.stale")
    if failure is None:
        emit(output, "backup verify", result, text)
        return
    if output is OutputFormat.text:
        text(result)
        raise failure
    # One JSON document with the copies' states and the error, as every failing command prints.
    error = {"code": failure.code, "message": failure.message, "exit_code": int(failure.exit_code), **result}
    sys.stdout.write(json.dumps(envelope("backup verify", "error", error), indent=2, default=str) + "\n")
    sys.stderr.write(f"error[{failure.code}]: {failure.message}\n")
    raise typer.Exit(int(failure.exit_code))


@app.command("prune")
def prune(
    keep_daily: Annotated[int, typer.Option("--keep-daily", min=1, help="daily backups kept per domain")] = 7,
    keep_weekly: Annotated[
        int, typer.Option("--keep-weekly", min=0, help="weekly backups kept per domain")
    ] = 4,
    target: TargetOpt = "lab",
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Delete backups outside the retention (never the newest verified backup of a domain) and the WAL
    series no kept realtime backup needs, from both copies; journaled like every run. On AWS run it with
    the site's pruning role (the stacks' pruningRoleArn): the runbook role may not delete backups."""
    loaded = load_target(target)
    policy = RetentionPolicy(daily=keep_daily, weekly=keep_weekly)
    plan = plan_prune(loaded, policy)
    rows = [{"backup_id": d.backup_id, "keep": d.keep, "reason": d.reason} for d in plan.backups]
    wal_rows = [{"series": d.series, "keep": d.keep, "reason": d.reason} for d in plan.wal_series]
    doomed = len(plan.doomed_backups) + len(plan.doomed_series)

    def text(_: Any) -> None:
        for row in rows:
            typer.echo(f"{'keep  ' if row['keep'] else 'delete'} {row['backup_id']:<34} {row['reason']}")
        for row in wal_rows:
            typer.echo(f"{'keep  ' if row['keep'] else 'delete'} {row['series']:<34} {row['reason']}")

    if dry_run or not doomed:

        def summary(_: Any) -> None:
            text(_)
            typer.echo(
                f"{'would delete' if dry_run else 'deleted'} {len(plan.doomed_backups)} backups and "
                f"{len(plan.doomed_series)} WAL series"
            )

        emit(output, "backup prune", {"dry_run": dry_run, "decisions": rows, "wal_series": wal_rows}, summary)
        return
    if output is OutputFormat.text:
        text(None)
    run_runbook(
        loaded,
        prune_runbook(loaded, prune_params(policy, plan)),
        command="backup prune",
        output=output,
        yes=yes,
    )
