"""`recovery upgrade` and `recovery rollback`: parse, call the runbooks, render, exit with the code.

Exit codes: 0 upgraded (or rolled back on request), 6 the upgrade failed and was rolled back cleanly,
7 the rollback failed (page a human), 3 refused by preflight, 2 bad input, 4 the target's lock is held,
1 the upgrade failed and was left for `recovery rollback` (--no-auto-rollback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from recovery.cli.commands import check_runbook, confirm_command
from recovery.cli.common import (
    DryRunOpt,
    OutputFormat,
    OutputOpt,
    TargetOpt,
    YesOpt,
    emit,
)
from recovery.cli.common import console as stderr_console
from recovery.cli.runs import ProgressDisplay, render_plan, show_command, subscribers
from recovery.engine import Engine, failed_run
from recovery.errors import ExitCode, RecoveryError
from recovery.notify import Notifier
from recovery.release.preflight import CHECK_NAMES
from recovery.report.junit import check_junit_path, write_junit
from recovery.report.upgrade import outcome_report, rollback_report
from recovery.runbooks.rollback import (
    DEFAULT_HEALTH_TIMEOUT as ROLLBACK_HEALTH_TIMEOUT,
)
from recovery.runbooks.rollback import (
    rollback_params,
    rollback_runbook,
    upgrade_with_rollback,
)
from recovery.runbooks.run_time import run_time_target
from recovery.runbooks.upgrade import (
    DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_WATCH_SECONDS,
    upgrade_params,
    upgrade_runbook,
)
from recovery.targets import load_target

JunitOpt = Annotated[
    Path | None, typer.Option("--junit", help="also write the report as JUnit XML to this file")
]
HealthTimeoutOpt = Annotated[
    int, typer.Option("--health-timeout", help="seconds each host may take to report healthy")
]


def ci_default() -> bool:
    """Auto-rollback is on by default in CI (CI=true, as GitHub Actions and GitLab CI set it)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def _render(report: dict[str, Any], target: str) -> None:
    typer.echo(f"{report['status']} (exit {report['exit_code']})")
    if report["failed_gate"]:
        typer.echo(f"failed gate: {report['failed_gate']}: {report['reason']}")
        typer.echo(f"detected after {report['detection_seconds']} s")
    for name in ("upgrade", "rollback"):
        run = report[name]
        if not run:
            continue
        # Its steps were listed as they ran (the progress display): one line here, not the table again.
        where = f" at {run['failed_step']}" if run.get("failed_step") else ""
        journal = show_command(run["run_id"], target)
        typer.echo(f"{name} run {run['run_id']}: {run['status']}{where}; journal: `{journal}`")
    rollback = report["rollback"]
    if rollback:
        if rollback.get("decision"):
            typer.echo(f"database: {rollback['decision']}")
        carried = rollback.get("carry_over")
        if carried:
            typer.echo(
                f"carried over: {carried['orders_inserted']} new orders, "
                f"{carried['orders_updated']} updated, "
                f"{carried['transactions']} payments, {carried['users']} users, "
                f"{carried['stock_updates']} stock levels"
            )
        for damaged in rollback["needs_a_person"]:
            typer.echo(
                f"NEEDS A PERSON: order {damaged['order_id']}: {damaged['reason']} "
                f"(payments: {', '.join(damaged['payments']) or 'none'})"
            )
        count = rollback.get("needs_a_person_count", 0)
        if count > len(rollback["needs_a_person"]):
            typer.echo(f"... {count} orders need a person in all: {rollback['needs_a_person_file']}")


def _finish(
    command: str,
    report: dict[str, Any],
    output: OutputFormat,
    junit: Path | None,
    error_code: str | None,
    target: str,
) -> None:
    if junit is not None:
        write_junit(junit, report)
    status = "ok" if report["exit_code"] == 0 else "error"
    emit(output, command, report, lambda found: _render(found, target), status=status)
    if report["exit_code"] != 0:
        sys.stderr.write(f"error[{error_code or 'failed'}]: {report['reason']}\n")
        raise typer.Exit(report["exit_code"])


def upgrade_command(
    release: Annotated[str, typer.Option("--release", "-r", help="the release to deploy, e.g. v2")],
    auto_rollback: Annotated[
        bool | None,
        typer.Option(
            "--auto-rollback/--no-auto-rollback",
            help="roll back at once when a step or gate fails (default: on when CI=true)",
        ),
    ] = None,
    target: TargetOpt = "lab",
    watch: Annotated[
        float, typer.Option("--watch", help="seconds to watch the gates after the deploy")
    ] = DEFAULT_WATCH_SECONDS,
    health_timeout: HealthTimeoutOpt = DEFAULT_HEALTH_TIMEOUT,
    skip_check: Annotated[
        list[str] | None,
        typer.Option("--skip-check", help=f"skip a preflight check (repeatable): {', '.join(CHECK_NAMES)}"),
    ] = None,
    restore_ahead: Annotated[
        bool,
        typer.Option(
            "--restore-ahead/--no-restore-ahead",
            help="restore the restore point beside live in the background for a fast rollback",
        ),
    ] = True,
    output: OutputOpt = OutputFormat.text,
    junit: JunitOpt = None,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Upgrade every host to a release: preflight, restore point, deploy, gates; roll back on failure."""
    loaded = load_target(target)
    params = upgrade_params(
        release,
        watch_seconds=watch,
        health_timeout=health_timeout,
        skip_checks=skip_check or (),
        restore_ahead=restore_ahead,
    )
    if junit is not None:
        check_junit_path(junit)
    if dry_run:
        plan = Engine(loaded).plan(upgrade_runbook(loaded, params))
        emit(output, "upgrade", plan.to_json(), lambda _: render_plan(plan))
        return
    confirm_command("upgrade", f"upgrading {loaded.name} to {release} changes its hosts and database", yes)
    display = ProgressDisplay(stderr_console) if output is OutputFormat.text else None
    listeners = subscribers(loaded, display)
    try:
        with run_time_target(loaded) as live:
            outcome = upgrade_with_rollback(
                live,
                params,
                auto_rollback=ci_default() if auto_rollback is None else auto_rollback,
                subscribers=listeners,
            )
    finally:
        if display is not None:
            display.close()
    if outcome.status == "rolled_back" and outcome.rollback is not None:
        # The runs announced themselves; this says what they came to, in one message.
        notifier = next(s for s in listeners if isinstance(s, Notifier))
        notifier.send(
            "team/rolled-back",
            {
                "target": loaded.name,
                "runbook": "rollback",
                "run_id": outcome.rollback.run_id,
                "at": outcome.rollback.finished_at or "-",
                "release": release,
                "failed_gate": outcome.failed_gate or "-",
            },
            {"run_id": outcome.rollback.run_id},
        )
    _finish("upgrade", outcome_report(outcome), output, junit, outcome.error_code, loaded.name)


def rollback_command(
    to: Annotated[
        str | None,
        typer.Option("--to", help="the release to return to (default: the one before the upgrade)"),
    ] = None,
    run: Annotated[
        str | None, typer.Option("--run", help="the upgrade run to undo (default: the target's last upgrade)")
    ] = None,
    target: TargetOpt = "lab",
    health_timeout: HealthTimeoutOpt = ROLLBACK_HEALTH_TIMEOUT,
    output: OutputOpt = OutputFormat.text,
    junit: JunitOpt = None,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
) -> None:
    """Return every host to the previous release; restore the database only when the upgrade changed it."""
    loaded = load_target(target)
    params = rollback_params(upgrade_run=run, to=to, health_timeout=health_timeout)
    if junit is not None:
        check_junit_path(junit)
    runbook = rollback_runbook(loaded, params)
    if dry_run:
        plan = Engine(loaded).plan(runbook)
        emit(output, "rollback", plan.to_json(), lambda _: render_plan(plan))
        return
    check_runbook("rollback", runbook)
    what = f"rolling back {loaded.name} changes its hosts and may swap its database"
    confirm_command("rollback", what, yes)
    display = ProgressDisplay(stderr_console) if output is OutputFormat.text else None
    try:
        with run_time_target(loaded) as live:
            result = Engine(live, subscribers(live, display)).run(runbook)
        report = rollback_report(result, status="rolled_back", exit_code=0, reason=None)
        code = None
    except RecoveryError as exc:
        failed = failed_run(exc)
        if failed is None:
            raise
        report = rollback_report(
            failed,
            status="rollback_failed",
            exit_code=int(ExitCode.ROLLBACK_FAILED),
            reason=f"{exc.message}; page a human",
        )
        code = "rollback.failed"
    finally:
        if display is not None:
            display.close()
    _finish("rollback", report, output, junit, code, loaded.name)
