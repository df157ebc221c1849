"""`recovery load`: real orders through the front door at a steady rate, with a ledger of every ack."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from recovery.cli.common import OutputFormat, OutputOpt, TargetOpt, emit
from recovery.load.generator import LoadSettings, LoadSummary, run_load
from recovery.targets import load_target


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def _render(doc: dict[str, Any]) -> None:
    typer.echo(
        f"sent {doc['sent']}, acked {doc['acked']}, failed {doc['failed']}, dropped {doc['dropped']} "
        f"in {doc['seconds']:.1f} s; payments {doc['payments_acked']}/{doc['payments_sent']} acked"
    )
    typer.echo(
        f"latency of acked orders: p50 {_ms(doc['p50_ms'])}, p95 {_ms(doc['p95_ms'])}, "
        f"max {_ms(doc['max_ms'])}"
    )
    for reason, count in doc["failures"].items():
        typer.echo(f"  {count:>6} x {reason}")
    typer.echo(f"ledger: {doc['ledger']}")


def summary_json(summary: LoadSummary) -> dict[str, Any]:
    return dict(summary.__dict__)


def load_command(
    rate: Annotated[float, typer.Option("--rate", help="orders per second")],
    duration: Annotated[float, typer.Option("--duration", help="seconds to run")],
    ledger: Annotated[Path, typer.Option("--ledger", help="the JSON-lines ledger to append to")],
    target: TargetOpt = "lab",
    pay_fraction: Annotated[float, typer.Option("--pay-fraction", help="share of orders also paid")] = 0.3,
    workers: Annotated[int, typer.Option("--workers", help="at most this many requests in flight")] = 8,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Place (and pay some) real orders through the target's front door; errors are counted, not fatal."""
    settings = LoadSettings(
        base_url=load_target(target).traffic.front_door_url,
        rate=rate,
        duration_s=duration,
        pay_fraction=pay_fraction,
        workers=workers,
    )
    # A load started in the background by a script cannot get SIGINT (non-interactive shells ignore it
    # for background jobs): SIGTERM stops it the same way, with the ledger's summary written.
    signal.signal(signal.SIGTERM, _interrupt)
    summary = run_load(settings, ledger)
    emit(output, "load", summary_json(summary), _render)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
