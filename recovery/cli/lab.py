"""`recovery lab up | status | down`: parse, call recovery.lab, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from recovery.cli.common import OutputFormat, OutputOpt, console, emit
from recovery.errors import ExitCode, UsageError
from recovery.lab import build, status, teardown
from recovery.lab.plan import DEFAULT_BASE_PORT
from recovery.targets.load import DEFAULT_LAB_DIR, load_target, resolve_target_path

app = typer.Typer(help="The single-machine lab: build it, check it, stop it.", no_args_is_help=True)

LabDirOpt = Annotated[Path, typer.Option("--lab-dir", help="the lab's directory (env RECOVERY_LAB_DIR)")]


@app.command("up")
def up(
    lab_dir: LabDirOpt = DEFAULT_LAB_DIR,
    base_port: Annotated[int, typer.Option("--base-port", help="front door port; the rest follow")] = (
        DEFAULT_BASE_PORT
    ),
    orders: Annotated[int, typer.Option("--orders", help="orders to seed (0: none)")] = build.DEFAULT_ORDERS,
    pg_bin: Annotated[Path | None, typer.Option("--pg-bin", help="system PostgreSQL bin dir")] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch/--no-watch",
            envvar="RECOVERY_LAB_WATCH",
            help="start `recovery watch` and wait for its first backups (default on)",
        ),
    ] = True,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Build the lab (or start what is missing of it)."""
    report = build.up(
        build.UpOptions(lab_dir=lab_dir, base_port=base_port, orders=orders, pg_bin=pg_bin, watch=watch)
    )
    result = {
        "lab_dir": str(report.lab_dir),
        "started": report.started,
        "already_running": report.already_running,
        "release": report.release,
        "seeded": report.seeded,
        "steps_seconds": report.steps,
        "target": str(report.lab_dir / "target.yaml"),
    }
    emit(output, "lab up", result, _render_up)


def _render_up(result: dict[str, Any]) -> None:
    if result["started"]:
        typer.echo(f"lab up at {result['lab_dir']}: started {', '.join(result['started'])}")
    else:
        typer.echo(f"lab already running at {result['lab_dir']}")
    if result["release"]:
        typer.echo(f"  release {result['release']} deployed")
    if result["seeded"]:
        typer.echo("  seeded " + ", ".join(f"{k} {v}" for k, v in result["seeded"].items()))
    for step, seconds in result["steps_seconds"].items():
        typer.echo(f"  {step:<18} {seconds:6.2f} s")
    typer.echo(f"  target: {result['target']}")


@app.command("status")
def status_command(
    lab_dir: LabDirOpt = DEFAULT_LAB_DIR,
    target: Annotated[str | None, typer.Option("--target", "-t", help="`lab` or a lab's target.yaml")] = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Report every part of the lab; exit 0 when all are healthy, 1 when not."""
    if target is not None:
        path = resolve_target_path(target)
        # A lab is a directory whose target is named target.yaml: any other file is not a lab's.
        if path.name != "target.yaml":
            raise UsageError(
                f"{path} is not a lab's target (a lab keeps target.yaml in its lab dir); give `lab`, the "
                "lab's target.yaml or --lab-dir DIR",
                code="lab.not_a_lab_target",
            )
        load_target(path)  # a missing or malformed target is a usage error before any probe
        lab_dir = path.parent
    doc = status.observe(lab_dir).to_dict()
    emit(output, "lab status", doc, _render_status, status="ok" if doc["healthy"] else "failed")
    if not doc["healthy"]:
        raise typer.Exit(int(ExitCode.FAILED))


def _mark(ok: bool | None) -> str:
    return "ok  " if ok else "FAIL"


def _render_status(doc: dict[str, Any]) -> None:
    typer.echo(f"lab {doc['lab_dir']} (release {doc['release']})")
    typer.echo(f"  {_mark(doc['moto']['reachable'])} moto            {doc['moto']['url']}")
    for d in doc["databases"]:
        lag = ""
        if d["expected_role"] == "standby" and d["reachable"]:
            lag = f" lag {d['lag_bytes']} B / {d['lag_seconds'] or 0:.2f} s streaming={d['streaming']}"
        ok = d["reachable"] and d["role"] == d["expected_role"]
        typer.echo(f"  {_mark(ok)} db {d['site']:<12} {d['address']}:{d['port']} role={d['role']}{lag}")
    for h in doc["hosts"]:
        typer.echo(f"  {_mark(h['ssh_reachable'])} ssh {h['name']:<11} {h['address']}:{h['ssh_port']}")
        typer.echo(f"  {_mark(h['service_healthy'])} service {h['site']:<7} version={h['service_version']}")
    typer.echo(
        f"  {_mark(doc['active_site'] is not None)} active site     {doc['active_site']} {doc['records']}"
    )
    fd = doc["front_door"]
    typer.echo(
        f"  {_mark(fd['reachable'])} front door      {fd['url']} -> {fd['backend']} ({fd['backend_site']})"
    )
    watch = doc["watch"]
    if watch["recorded"]:
        typer.echo(f"  {_mark(watch['running'])} watch           pid {watch['pid']} {watch['metrics_url']}")
        if watch["decision"]:
            typer.echo(f"       {watch['decision']}")
    else:
        typer.echo("  -    watch           not started (lab up --no-watch)")
    for problem in doc["problems"]:
        console.print(f"problem: {problem}")
    typer.echo("healthy" if doc["healthy"] else "NOT healthy")


@app.command("down")
def down(
    lab_dir: LabDirOpt = DEFAULT_LAB_DIR,
    purge: Annotated[bool, typer.Option("--purge", help="also remove the lab dir")] = False,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Stop every process the lab started (by pid from lab.json); remove nothing unless --purge."""
    report = teardown.down(lab_dir, purge=purge)
    result = {
        "lab_dir": str(report.lab_dir),
        "found": report.found,
        "stopped": report.stopped,
        "not_running": report.not_running,
        "purged": report.purged,
    }
    emit(output, "lab down", result, _render_down)


def _render_down(result: dict[str, Any]) -> None:
    if not result["found"]:
        typer.echo(f"no lab at {result['lab_dir']}" + (" (removed)" if result["purged"] else ""))
        return
    typer.echo(f"lab down at {result['lab_dir']}: stopped {', '.join(result['stopped']) or 'nothing'}")
    if result["not_running"]:
        typer.echo(f"  already gone: {', '.join(result['not_running'])}")
    if result["purged"]:
        typer.echo("  lab dir removed")
