"""What every command shares: its options, the JSON envelope, and confirmation of destructive steps."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

from recovery.errors import ConfirmationRequired

ENVELOPE_SCHEMA = "order-recovery/v1"

console = Console(stderr=True, highlight=False)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


OutputOpt = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="text for people, json for pipelines")
]
TargetOpt = Annotated[
    str, typer.Option("--target", "-t", help="`lab`, a name under inventories/, or a target.yaml path")
]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="confirm destructive steps (required without a TTY)")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="print the plan and change nothing")]


def envelope(command: str, status: str, result: Any) -> dict[str, Any]:
    """The versioned JSON document every command prints with `--output json`."""
    return {"schema": ENVELOPE_SCHEMA, "command": command, "status": status, "result": result}


def emit(
    output: OutputFormat,
    command: str,
    result: Any,
    render_text: Callable[[Any], None],
    status: str = "ok",
) -> None:
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps(envelope(command, status, result), indent=2, default=str) + "\n")
    else:
        render_text(result)


def confirm_destructive(what: str, yes: bool) -> None:
    """Ask before a destructive step; refuse without --yes when nobody can answer."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfirmationRequired(f"{what} is destructive; rerun with --yes to confirm (no TTY to ask on)")
    if not typer.confirm(f"{what}. Continue?", default=False):
        raise ConfirmationRequired(f"{what} was not confirmed; nothing was changed")
