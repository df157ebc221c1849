"""`recovery backup ship`: ship the primary's spooled WAL to both copies, once or until interrupted.

A command function `recovery/cli/backup.py` registers (`app.command("ship")(ship)`); it only
parses, calls `ship_wal`/`follow_wal` and renders.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

import typer

from recovery.backup.realtime import ShipReport, follow_wal, realtime_stores, ship_wal
from recovery.cli.common import OutputFormat, OutputOpt, TargetOpt, emit
from recovery.errors import UsageError
from recovery.targets import load_target


def report_json(report: ShipReport) -> dict[str, Any]:
    return {
        "spool": report.spool,
        "seconds": round(report.seconds, 3),
        "files": [
            {
                "file": item.file_name,
                "series": item.series,
                "written_at": item.written_at.isoformat(),
                "stored_bytes": item.stored_bytes,
                "uploaded_to": list(item.uploaded_to),
            }
            for item in report.files
        ],
    }


def _render(result: dict[str, Any]) -> None:
    files = result["files"]
    if not files:
        typer.echo(f"nothing to ship in {result['spool']}")
    for item in files:
        where = ", ".join(item["uploaded_to"]) or "already in both copies"
        typer.echo(f"{item['file']}  {item['series']}  -> {where}")


def ship(
    target: TargetOpt = "lab",
    follow: Annotated[
        bool, typer.Option("--follow", help="keep shipping until interrupted (Ctrl-C)")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", help="seconds between spool checks with --follow")
    ] = 1.0,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Encrypt the spooled WAL of the primary into both copies; remove each file once both verify."""
    if interval <= 0:
        raise UsageError(f"--interval {interval} must be above 0 seconds")
    loaded = load_target(target)
    stores = realtime_stores(loaded)
    if not follow:
        emit(output, "backup ship", report_json(ship_wal(loaded, stores=stores)), _render)
        return
    stop = threading.Event()

    def on_report(report: ShipReport) -> None:
        emit(output, "backup ship", report_json(report), _render)

    def on_error(exc: Exception) -> None:
        typer.echo(f"warning: {exc}; retrying", err=True)

    try:
        follow_wal(loaded, stop, interval=interval, stores=stores, on_report=on_report, on_error=on_error)
    except KeyboardInterrupt:
        stop.set()
