"""`recovery gameday run | history`: scripted faults through Chaos Toolkit, measured against objectives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from recovery.cli.common import OutputFormat, OutputOpt, TargetOpt, YesOpt, confirm_destructive, emit
from recovery.cli.preflight import emit_or_fail
from recovery.engine.journal import new_run_id
from recovery.errors import VerificationFailed
from recovery.gameday.history import read_runs, trends
from recovery.gameday.model import GameDayRun
from recovery.gameday.report import junit_report
from recovery.gameday.runner import run_game_day
from recovery.gameday.scenario import load_scenario
from recovery.targets import load_target

app = typer.Typer(
    help="Game days: break the system on purpose and measure the response.", no_args_is_help=True
)

ReportDirOpt = Annotated[
    Path | None,
    typer.Option("--report-dir", help="where reports go (default: the target's state_dir/gamedays)"),
]


def _summary(run: GameDayRun, report_dir: Path) -> dict[str, Any]:
    m = run.measured
    return {
        "run_id": run.run_id,
        "scenario": run.scenario,
        "passed": run.passed,
        "experiment_status": run.experiment_status,
        "time_to_detect_s": m.time_to_detect_s,
        "rto_s": m.rto_s,
        "orders_acknowledged": m.orders_acknowledged,
        "orders_lost": m.orders_lost,
        "error_rate": m.error_rate,
        "objectives": [{"name": r.name, "passed": r.passed, "reason": r.reason} for r in run.results],
        "report": str(report_dir / run.run_id / "report.html"),
    }


def _seconds(value: float | None) -> str:
    """A measured time, or `-` for a scenario that does not measure it (no detection marker, say)."""
    return "-" if value is None else f"{value} s"


def _render(doc: dict[str, Any]) -> None:
    for run in doc["runs"]:
        verdict = "PASSED" if run["passed"] else "FAILED"
        typer.echo(f"{run['scenario']}: {verdict} (experiment {run['experiment_status']})")
        typer.echo(
            f"  time to detect {_seconds(run['time_to_detect_s'])}, RTO {_seconds(run['rto_s'])}, "
            f"orders acknowledged {run['orders_acknowledged']}, lost {run['orders_lost']}, "
            f"error rate {run['error_rate']:.1%}"
        )
        for objective in run["objectives"]:
            typer.echo(
                f"  {'ok  ' if objective['passed'] else 'MISS'} {objective['name']}: {objective['reason']}"
            )
        typer.echo(f"  report: {run['report']}")
    if doc.get("junit"):
        typer.echo(f"JUnit: {doc['junit']}")


@app.command("run")
def run_command(
    scenarios: Annotated[list[Path], typer.Argument(help="scenario files (Chaos Toolkit experiments)")],
    target: TargetOpt = "lab",
    report_dir: ReportDirOpt = None,
    output: OutputOpt = OutputFormat.text,
    yes: YesOpt = False,
) -> None:
    """Run each scenario: steady state, load, fault, the toolkit's response, verification, reports."""
    loaded_scenarios = [load_scenario(path) for path in scenarios]  # every file checked before any fault
    loaded = load_target(target)
    confirm_destructive(
        f"a game day injects real faults into {loaded.name} ({', '.join(s.name for s in loaded_scenarios)})",
        yes,
    )
    out = report_dir or loaded.state_dir / "gamedays"
    runs = [run_game_day(s, loaded, target, out, new_run_id("gameday")) for s in loaded_scenarios]
    junit = out / f"{runs[-1].run_id}-junit.xml"
    junit.write_bytes(junit_report(runs))
    doc = {"runs": [_summary(run, out) for run in runs], "junit": str(junit)}
    missed = [run.scenario for run in runs if not run.passed]
    failure = None
    if missed:
        failure = VerificationFailed(
            f"game day missed its objectives: {', '.join(missed)}; the reports say which and why",
            code="gameday.objective_missed",
        )
    emit_or_fail(output, "gameday run", doc, _render, failure)


@app.command("history")
def history_command(
    target: TargetOpt = "lab",
    report_dir: ReportDirOpt = None,
    scenario: Annotated[str | None, typer.Option("--scenario", help="only this scenario")] = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Every game day run under the report directory, and each scenario's trend over time."""
    out = report_dir or load_target(target).state_dir / "gamedays"
    runs = read_runs(out, scenario) if out.is_dir() else []
    doc = {
        "runs": [_summary(run, out) | {"started_at": run.started_at} for run in runs],
        "trends": [trend.sentence() for trend in trends(runs)],
    }

    def render(document: dict[str, Any]) -> None:
        for run in document["runs"]:
            typer.echo(
                f"{run['started_at']}  {run['scenario']:<32} {'pass' if run['passed'] else 'FAIL'}  "
                f"detect {_seconds(run['time_to_detect_s'])}  RTO {_seconds(run['rto_s'])}  "
                f"lost {run['orders_lost']}"
            )
        for sentence in document["trends"]:
            typer.echo(sentence)
        if not document["runs"]:
            typer.echo(f"no game day reports under {out}")

    emit(output, "gameday history", doc, render)
