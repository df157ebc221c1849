"""`recovery runs`: list, show and resume runbook runs; and the one way every command runs a runbook.

Other command modules call `run_runbook(...)`: it prints the plan for `--dry-run`, asks before
destructive runbooks, shows progress on stderr (quiet with `--output json`) and renders the result.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.status import Status

from recovery.cli.commands import CommandProperties, check_runbook, confirm_command
from recovery.cli.common import (
    OutputFormat,
    OutputOpt,
    TargetOpt,
    YesOpt,
    emit,
    envelope,
    invoked_target,
    naming_target,
)
from recovery.cli.common import console as stderr_console
from recovery.engine import (
    Engine,
    Event,
    Plan,
    Runbook,
    RunFinished,
    RunResult,
    RunResumed,
    RunStarted,
    StepFailed,
    StepFinished,
    StepNote,
    StepProgress,
    StepReused,
    StepStarted,
    failed_run,
    is_running,
    journal_path,
    read_journal,
    run_ids,
    summarize,
)
from recovery.engine.events import Subscriber
from recovery.engine.interrupted import interrupted_inside_fence
from recovery.engine.result import NotAJournal
from recovery.errors import RecoveryError, UsageError
from recovery.notify import Notifier
from recovery.runbooks.run_time import run_time_target
from recovery.targets import Target, load_target

app = typer.Typer(help="List, show and resume runbook runs (the audit journal).", no_args_is_help=True)

RunIdArg = Annotated[str, typer.Argument(help="the run id, as `recovery runs list` shows it")]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}s"


class ProgressDisplay:
    """Event subscriber that shows a run's progress on stderr: one line per step, a spinner on a TTY."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._status: Status | None = None
        self._attempts: dict[str, int] = {}

    def __call__(self, event: Event) -> None:
        out = self.console
        if isinstance(event, RunStarted):
            out.print(f"run {event.run_id}: {event.runbook} on {event.target}, {len(event.steps)} steps")
        elif isinstance(event, RunResumed):
            out.print(f"resuming run {event.run_id}: {len(event.reused)} steps finished before")
        elif isinstance(event, StepReused):
            out.print(f"  = {event.index}/{event.total} {event.step} (finished before)")
        elif isinstance(event, StepStarted):
            self._attempts[event.step] = event.attempt
            self._spin(f"{event.index}/{event.total} {event.step}: {event.description}")
        elif isinstance(event, StepProgress):
            self._spin(f"{event.step}: {event.message}")
        elif isinstance(event, StepNote):
            out.print(f"    {event.step}: {escape(event.message)}")
        elif isinstance(event, StepFinished):
            self.close()
            took = _seconds(event.duration_s)
            if self._attempts.get(event.step, 1) > 1:
                took += f", attempt {self._attempts[event.step]}"
            out.print(f"  [green]ok[/] {event.index}/{event.total} {event.step} ({took})")
        elif isinstance(event, StepFailed):
            self.close()
            why = escape(f"[{event.code}] {event.message}")
            out.print(
                f"  [red]failed[/] {event.index}/{event.total} {event.step} "
                f"({_seconds(event.duration_s)}): {why}"
            )
        elif isinstance(event, RunFinished):
            self.close()
            out.print(f"run {event.run_id} {event.status} in {_seconds(event.duration_s)}")

    def _spin(self, text: str) -> None:
        if not self.console.is_terminal:
            return
        if self._status is None:
            self._status = self.console.status(escape(text))
            self._status.start()
        else:
            self._status.update(escape(text))

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


# Rendering ------------------------------------------------------------------------------------------


def render_plan(plan: Plan) -> None:
    typer.echo(f"plan: {plan.runbook} on {plan.target} (dry run: nothing was changed)")
    named = invoked_target()
    if named is not None:
        typer.echo(f"{'changes' if plan.mutating else 'reads'} {named.describe()}")
    if plan.params:
        typer.echo(f"parameters: {json.dumps(plan.params, default=dict)}")
    for index, step in enumerate(plan.steps, 1):
        kind = "changes" if step.mutating else "reads"
        where = f" -> {', '.join(step.acts_on)}" if step.acts_on else ""
        typer.echo(f"  {index}. {step.name} [{kind}]: {step.description}{where}")
    if plan.lock is not None:
        typer.echo(f"a real run takes the lock {plan.lock} and journals to {plan.journal}")
    else:
        typer.echo(f"a real run only reads (no lock) and journals to {plan.journal}")
    if plan.confirm:
        typer.echo(f"it asks for confirmation first: {naming_target(plan.confirm)}")


def render_result(result: RunResult) -> None:
    """The outcome in one line: the progress display has listed every step as it ran, and the journal
    holds the table (`recovery runs show`), so the steps are not printed a second time."""
    done = sum(step.status == "ok" for step in result.steps)
    typer.echo(
        f"run {result.run_id}: {result.runbook} on {result.target}: {result.status} "
        f"({done} of {len(result.steps)} steps done); journal: `{show_command(result.run_id, result.target)}`"
    )


def _render_record(record: dict[str, Any]) -> str:
    event = record["event"]
    rest = {k: v for k, v in record.items() if k not in ("seq", "at", "event", "run_id", "step")}
    step = f" {record['step']}" if "step" in record else ""
    if event == "run.started":
        rest = {k: rest[k] for k in ("runbook", "target", "params", "user", "host", "pid")}
    elif event == "step.started":
        rest = {"attempt": rest["attempt"]}
    elif event == "step.failed":
        rest.pop("traceback", None)  # the journal keeps it; the terminal does not show it
    return f"  {record['at']} {event}{step} {json.dumps(rest, separators=(', ', ': '))}"


def render_journal(doc: dict[str, Any]) -> None:
    run = doc["run"]
    who = f"{run['user']}@{run['host']}"
    typer.echo(f"run {run['run_id']}: {run['runbook']} on {run['target']}: {run['status']}")
    typer.echo(
        f"started {run['started_at']} by {who}; finished {run['finished_at'] or '-'}; "
        f"resumed {run['resumes']} times"
    )
    typer.echo(f"parameters: {json.dumps(run['params'])}")
    typer.echo("steps:")
    for index, step in enumerate(run["steps"], 1):
        line = f"  {index}. {step['status']:<8} {step['name']:<24} {_seconds(step['duration_s']):>9}"
        if step["code"]:
            line += f"  [{step['code']}] {step['message']}"
        elif step["output"]:
            line += f"  {json.dumps(step['output'])}"
        typer.echo(line)
    typer.echo(f"journal {doc['path']}:")
    for record in doc["records"]:
        typer.echo(_render_record(record))


# Running --------------------------------------------------------------------------------------------


def _finish(output: OutputFormat, command: str, run: Any) -> RunResult:
    """Run `run()` with the display wired; on failure report the run and exit with the error's code."""
    display = ProgressDisplay(stderr_console) if output is OutputFormat.text else None
    try:
        result: RunResult = run(display)
    except RecoveryError as exc:
        failed = failed_run(exc)
        if failed is None:
            raise
        if output is OutputFormat.text:
            stderr_console.print(
                f"journal: `{show_command(failed.run_id, failed.target)}`", markup=False, soft_wrap=True
            )
            raise
        # One JSON document that carries the error and the run, so a pipeline keeps the run id.
        doc = envelope(
            command,
            "error",
            {
                "code": exc.code,
                "message": exc.message,
                "exit_code": int(exc.exit_code),
                "run": failed.to_json(),
            },
        )
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        sys.stderr.write(f"error[{exc.code}]: {exc.message}\n")
        raise typer.Exit(int(exc.exit_code)) from None
    finally:
        if display is not None:
            display.close()
    emit(output, command, result.to_json(), lambda _: render_result(result))
    return result


def show_command(run_id: str, target_name: str) -> str:
    """The command that shows a run's journal, naming the target the run was on as this command was
    pointed at it (a path stays a path: the run's target name may not resolve to it)."""
    named = invoked_target()
    return f"recovery runs show {run_id} -t {named.again if named is not None else target_name}"


def subscribers(target: Target, display: ProgressDisplay | None) -> list[Subscriber]:
    """Who hears a run's events besides its journal: the progress display (text output) and the notifier
    that tells the target's team when the run starts and how it ends (docs/notifications.md)."""
    return [*([display] if display else []), Notifier(target)]


def run_runbook(
    target: Target,
    runbook: Runbook,
    *,
    command: str | CommandProperties,
    output: OutputFormat,
    dry_run: bool = False,
    yes: bool = False,
) -> RunResult | None:
    """Run a runbook from a command: the plan for --dry-run (returns None), else the run's result.
    A failed run raises its RecoveryError after reporting (JSON: exits with its code)."""
    found = check_runbook(command, runbook)
    if dry_run:
        plan = Engine(target).plan(runbook)
        emit(output, found.command, plan.to_json(), lambda _: render_plan(plan))
        return None
    confirm_command(found, runbook.confirm or f"{found.command} changes {target.name}", yes)

    def run(display: ProgressDisplay | None) -> RunResult:
        # Hosts found by tags and RDS credentials read now, for this run only (docs/deploy.md).
        with run_time_target(target) as live:
            return Engine(live, subscribers(live, display)).run(runbook)

    return _finish(output, found.command, run)


# Commands -------------------------------------------------------------------------------------------


@app.command("list")
def list_runs(
    target: TargetOpt = "lab",
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="how many recent runs")] = 20,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Recent runs of a target, newest first, with their status."""
    loaded = load_target(target)
    rows: list[dict[str, Any]] = []
    for run_id in run_ids(loaded.state_dir):
        if len(rows) == limit:
            break
        path = journal_path(loaded.state_dir, run_id)
        try:
            records, running = read_journal(path), is_running(path)
            result = summarize(records, running=running)
        except NotAJournal:
            rows.append(
                {
                    "run_id": run_id,
                    "runbook": None,
                    "status": "unreadable",
                    "started_at": None,
                    "finished_at": None,
                    "steps_done": 0,
                    "steps": 0,
                    "failed_step": None,
                }
            )
            continue
        fenced = interrupted_inside_fence(records, lock_held=running)
        rows.append(
            {
                "run_id": run_id,
                "runbook": result.runbook,
                "status": result.status,
                "started_at": result.started_at,
                "finished_at": result.finished_at,
                "steps_done": sum(step.status == "ok" for step in result.steps),
                "steps": len(result.steps),
                "failed_step": result.failed_step,
                "fenced_resume": fenced.resume_command(target) if fenced else None,
            }
        )

    def text(_: Any) -> None:
        if not rows:
            typer.echo(f"no runs for target {loaded.name} yet")
        for row in rows:
            failed = f"  failed at {row['failed_step']}" if row["failed_step"] else ""
            if row.get("fenced_resume"):
                failed += f"  SERVICE FENCED (stopped): end it with `{row['fenced_resume']}`"
            typer.echo(
                f"{row['run_id']:<44} {row['status']:<11} {row['runbook'] or '-':<12} "
                f"{row['steps_done']}/{row['steps']} steps  {row['started_at'] or '-'}{failed}"
            )

    emit(output, "runs list", {"target": loaded.name, "runs": rows}, text)


@app.command("show")
def show_run(run_id: RunIdArg, target: TargetOpt = "lab", output: OutputOpt = OutputFormat.text) -> None:
    """One run's journal, rendered: who, when, the steps with their status, and every record."""
    loaded = load_target(target)
    path = journal_path(loaded.state_dir, run_id)
    if not path.is_file():
        raise UsageError(f"no run {run_id} for target {loaded.name}; `recovery runs list` shows its runs")
    records = read_journal(path)
    try:
        result = summarize(records, running=is_running(path))
    except NotAJournal:
        raise UsageError(f"{path} has no run.started record; it is not a readable run journal") from None
    emit(
        output, "runs show", {"run": result.to_json(), "path": str(path), "records": records}, render_journal
    )


@app.command("resume")
def resume_run(
    run_id: RunIdArg, target: TargetOpt = "lab", yes: YesOpt = False, output: OutputOpt = OutputFormat.text
) -> None:
    """Continue an interrupted run: finished steps are kept, the interrupted step is rerun."""
    loaded = load_target(target)

    def approve(runbook: Runbook) -> None:
        if runbook.mutating or runbook.confirm:
            what = runbook.confirm or (
                f"resuming run {run_id} continues {runbook.name}, which changes {loaded.name}"
            )
            confirm_command("runs resume", what, yes)

    def resume(display: ProgressDisplay | None) -> RunResult:
        with run_time_target(loaded) as live:
            return Engine(live, subscribers(live, display)).resume(run_id, approve)

    _finish(output, "runs resume", resume)
