"""`recovery intake add --csv | status | replay`: orders taken while the core was down, entered once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from recovery.cli.common import OutputFormat, OutputOpt, TargetOpt, emit
from recovery.cli.preflight import emit_or_fail
from recovery.errors import UsageError, VerificationFailed
from recovery.intake.book import (
    intake_queue,
    queued_ids,
    read_catalog,
    record_queued,
    replay_document,
    replay_target,
)
from recovery.intake.csv_orders import parse_csv_orders
from recovery.notify.publish import Notifier
from recovery.targets import load_target

app = typer.Typer(
    help="Degraded-mode intake: queued orders, bulk entry, exactly-once replay.", no_args_is_help=True
)


def _render_add(doc: dict[str, Any]) -> None:
    typer.echo(f"{doc['source']}: queued {doc['queued']} orders, {doc['already']} already queued before")
    for problem in doc["problems"]:
        typer.echo(f"  {problem}")


@app.command("add")
def add_command(
    csv_file: Annotated[
        Path, typer.Option("--csv", help="orders taken by phone or e-mail, one row per line")
    ],
    target: TargetOpt = "lab",
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Check every row, queue each complete order once, report each bad row with its line and why."""
    try:
        data = csv_file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {csv_file} ({exc.strerror}); give the CSV file's path") from None
    loaded = load_target(target)
    queue = intake_queue(loaded)
    result = parse_csv_orders(
        data, csv_file.name, read_catalog(loaded), datetime.now(UTC), queued_ids(loaded)
    )
    notifier = Notifier(loaded)
    for order in result.orders:
        record_queued(loaded, order, queue.send(order))
        notifier.send(
            "customer/order-pending",
            {"order_id": str(order.order_id), "received_at": order.received_at.isoformat()},
        )
    doc = {
        "source": str(csv_file),
        "queued": len(result.orders),
        "already": len(result.already),
        "order_ids": [str(order.order_id) for order in result.orders],
        "problems": [str(problem) for problem in result.problems],
    }
    failure = None
    if result.problems:
        failure = VerificationFailed(
            f"{len(result.problems)} rows of {csv_file} were not queued (each listed with its line); fix "
            "them and run the same file again: what was queued is not queued twice",
            code="intake.rows_refused",
        )
    emit_or_fail(output, "intake add", doc, _render_add, failure)


@app.command("status")
def status_command(target: TargetOpt = "lab", output: OutputOpt = OutputFormat.text) -> None:
    """How many orders wait in the intake queue, are being replayed, or were set aside."""
    status = intake_queue(load_target(target)).status()
    doc = {"waiting": status.waiting, "in_flight": status.in_flight, "dead_letters": status.dead_letters}
    emit(
        output,
        "intake status",
        doc,
        lambda d: typer.echo(
            f"waiting {d['waiting']}, in flight {d['in_flight']}, set aside {d['dead_letters']}"
        ),
    )


@app.command("replay")
def replay_command(
    target: TargetOpt = "lab",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="stop after this many orders")] = None,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Enter every queued order into the order service once; set aside what it can never accept."""
    doc = replay_document(replay_target(load_target(target), limit=limit))

    def render(d: dict[str, Any]) -> None:
        typer.echo(f"replayed {d['created']} orders ({d['already_present']} were already there)")
        for aside in d["set_aside"]:
            typer.echo(f"  set aside for a person: {aside['order_id'] or '(unreadable)'}: {aside['reason']}")
        if d["stopped"]:
            typer.echo(f"stopped: {d['stopped']}; run `recovery intake replay` again once it is back")

    emit(output, "intake replay", doc, render)
