"""What every command shares: its options, the JSON envelope, the target it was pointed at, and
confirmation of destructive steps."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from recovery.errors import ConfirmationRequired, RecoveryError, UsageError
from recovery.targets import load as target_files

ENVELOPE_SCHEMA = "order-recovery/v1"

console = Console(stderr=True, highlight=False)


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


OutputOpt = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="text for people, json for pipelines")
]


def _remember_target(ctx: typer.Context, param: typer.CallbackParam, value: str) -> str:
    """Note what `--target` said and whether it was given, for the confirmation, the plan and the hint
    after a failed run (`invoked_target`), so that no command has to pass it along."""
    source = ctx.get_parameter_source(param.name or "target")
    implicit = source is None or source.name in ("DEFAULT", "DEFAULT_MAP")
    _INVOKED_TARGET.set(TargetArgument(value, implicit))
    return value


TargetOpt = Annotated[
    str,
    typer.Option(
        "--target",
        "-t",
        help="`lab`, a name under inventories/, or a target.yaml path (default lab; destructive commands "
        "refuse the default when more than one target is known)",
        callback=_remember_target,
    ),
]
DEFAULT_TARGET = "lab"
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


@dataclass(frozen=True)
class TargetArgument:
    """The target a command was pointed at: what `-t` said (or the default) and whether it was given."""

    given: str
    implicit: bool

    @property
    def path(self) -> Path | None:
        """The description it resolves to (None when there is none)."""
        try:
            return target_files.resolve_target_path(self.given).resolve()
        except RecoveryError:
            return None

    @property
    def again(self) -> str:
        """How to name the same target in another command: the name, or the description's full path."""
        path = self.path
        return str(path) if path is not None and _is_path(self.given) else self.given

    def describe(self) -> str:
        path = self.path
        where = f" ({path})" if path is not None and self.again != str(path) else ""
        default = ", the default: -t was not given" if self.implicit else ""
        return f"target {self.again}{where}{default}"


_INVOKED_TARGET: ContextVar[TargetArgument | None] = ContextVar("invoked_target", default=None)


def _is_path(argument: str) -> bool:
    return "/" in argument or argument.endswith((".yaml", ".yml"))


def invoked_target() -> TargetArgument | None:
    """The `--target` of the command being run (None outside a command, e.g. a runbook run from code)."""
    return _INVOKED_TARGET.get()


def forget_invoked_target() -> None:
    """Called as each invocation starts: a command without `--target` must not see an earlier one's."""
    _INVOKED_TARGET.set(None)


def known_targets() -> list[str]:
    """The targets a bare `-t NAME` reaches on this machine: `lab` when the lab's description exists
    (`RECOVERY_LAB_DIR` or the default lab directory), and every `inventories/<name>/target.yaml`. A
    target kept elsewhere is named by its path and is not counted."""
    known = [DEFAULT_TARGET] if (target_files.DEFAULT_LAB_DIR / "target.yaml").is_file() else []
    inventories = target_files.INVENTORIES
    if inventories.is_dir():
        known += sorted(
            entry.name
            for entry in inventories.iterdir()
            if entry.name != DEFAULT_TARGET and (entry / "target.yaml").is_file()
        )
    return known


def require_named_target(command: str) -> None:
    """Refuse a destructive command on the implicit default target when another target is known: a
    forgotten `-t` in an operator's shell must not change whichever lab the default points at."""
    named = invoked_target()
    if named is None or not named.implicit:
        return
    known = known_targets()
    if len(known) > 1:
        raise UsageError(
            f"{command} changes a target and -t was not given; {len(known)} targets are known "
            f"({', '.join(known)}): pass -t NAME to say which (-t {DEFAULT_TARGET} for the lab); "
            "nothing was changed",
            code="target.not_named",
        )


def naming_target(what: str) -> str:
    """`what` a destructive command does, with the target it does it to (when run as a command)."""
    named = invoked_target()
    return f"{what} on {named.describe()}" if named is not None else what
