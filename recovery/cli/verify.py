"""`recovery verify --ledger`: every order the load generator saw acknowledged exists, once, as acked."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from recovery.cli.common import OutputFormat, OutputOpt, TargetOpt
from recovery.cli.preflight import emit_or_fail
from recovery.errors import RecoveryError, VerificationFailed
from recovery.load.ledger import read_ledger
from recovery.load.ledger_check import MAX_EXAMPLES, verify_ledger
from recovery.targets import load_target

FINDINGS = ("set_aside", "lost", "duplicated", "mismatched", "unpaid", "conflicting_acks")


def _render(doc: dict[str, Any]) -> None:
    typer.echo(doc["summary"])
    typer.echo(
        f"  present: {doc['present']}  set aside for a person: {doc['set_aside']['count']}  "
        f"lost: {doc['lost']['count']}"
    )
    for label in FINDINGS:
        finding = doc[label]
        if finding["count"]:
            shown = ", ".join(finding["examples"][:MAX_EXAMPLES])
            more = (
                f" and {finding['count'] - MAX_EXAMPLES} more (--output json lists all)"
                if finding["count"] > MAX_EXAMPLES
                else ""
            )
            typer.echo(f"  {label}: {finding['count']}: {shown}{more}")
    if doc["torn_last_line"]:
        typer.echo("  note: the ledger's last line was torn (the writer stopped mid-line) and was skipped")


def verify_command(
    ledger: Annotated[Path, typer.Option("--ledger", help="the ledger `recovery load` wrote")],
    target: TargetOpt = "lab",
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Prove each acknowledged order exists exactly once in the primary database with its acked total."""
    read = read_ledger(ledger)
    loaded = load_target(target)
    # Orders a rollback since the ledger started handed to a person are set aside, not lost.
    verdict = verify_ledger(loaded, read)
    doc = {
        "ledger": str(ledger),
        "target": loaded.name,
        "passed": verdict.passed,
        "summary": verdict.summary(),
        "acknowledged": verdict.acknowledged,
        "present": verdict.present,
        "pending": verdict.pending,
        "pending_present": verdict.pending_present,
        "payments": verdict.payments,
        "failures_in_ledger": len(read.failures),
        "torn_last_line": read.torn_last_line,
        **{label: asdict(getattr(verdict, label)) for label in FINDINGS},
    }
    failure: RecoveryError | None = None
    if not verdict.passed:
        failure = VerificationFailed(f"ledger check failed: {verdict.summary()}", code="verify.ledger")
    emit_or_fail(output, "verify", doc, _render, failure)
