"""`recovery preflight`: may a release be deployed on a target? Every check, its result and its reason."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from recovery.cli.common import OutputFormat, OutputOpt, TargetOpt, emit, envelope
from recovery.errors import RecoveryError
from recovery.release.catalog import get_release
from recovery.release.preflight import (
    CHECK_NAMES,
    PreflightOptions,
    PreflightReport,
    ensure_passed,
    run_preflight,
)
from recovery.release.preflight_checks.dry_run import DEFAULT_SAMPLE_ORDERS
from recovery.runbooks.run_time import run_time_target
from recovery.targets import load_target

_MARK = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}


def emit_or_fail(
    output: OutputFormat,
    command: str,
    result: dict[str, Any],
    render: Callable[[dict[str, Any]], None],
    failure: RecoveryError | None,
) -> None:
    """Print the result; on failure exit with the error's code (JSON: one document carrying both)."""
    if failure is None:
        emit(output, command, result, render)
        return
    if output is OutputFormat.text:
        render(result)
        raise failure
    error = {"code": failure.code, "message": failure.message, "exit_code": int(failure.exit_code)}
    sys.stdout.write(json.dumps(envelope(command, "error", {**result, "error": error}), indent=2) + "\n")
    sys.stderr.write(f"error[{failure.code}]: {failure.message}\n")
    raise typer.Exit(int(failure.exit_code))


def _render(doc: dict[str, Any]) -> None:
    verdict = "may be deployed" if doc["passed"] else "is REFUSED"
    typer.echo(f"preflight of {doc['release']} on {doc['target']} ({doc['seconds']:.1f} s): {verdict}")
    for check in doc["checks"]:
        typer.echo(f"  {_MARK[check['status']]} {check['name']:<18} {check['subject']:<21} {check['reason']}")


def preflight_command(
    release: Annotated[str, typer.Option("--release", "-r", help="the release to check, e.g. v2")],
    target: TargetOpt = "lab",
    restore_point_pending: Annotated[
        bool,
        typer.Option(
            "--restore-point-pending",
            help="a restore point of every domain is taken before anything changes (as `recovery upgrade` "
            "does): missing or old backups do not refuse",
        ),
    ] = False,
    skip: Annotated[
        list[str] | None,
        typer.Option("--skip", help=f"skip a check (repeatable): {', '.join(CHECK_NAMES)}"),
    ] = None,
    sample_orders: Annotated[
        int,
        typer.Option(
            "--sample-orders", help="newest orders copied into the migration dry run's scratch copy"
        ),
    ] = DEFAULT_SAMPLE_ORDERS,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Check a release's requirements, connectivity, replication, backups and a migration dry run.

    Changes nothing (the dry run uses a scratch database it drops); exits 3 when any check fails.
    """
    options = PreflightOptions(
        restore_point_pending=restore_point_pending, skip=frozenset(skip or ()), sample_orders=sample_orders
    )
    chosen = get_release(release)
    loaded = load_target(target)
    with run_time_target(loaded) as live:
        report: PreflightReport = run_preflight(live, chosen, options)
    failure: RecoveryError | None = None
    try:
        ensure_passed(report)
    except RecoveryError as exc:
        failure = exc
    emit_or_fail(output, "preflight", report.to_json(), _render, failure)
