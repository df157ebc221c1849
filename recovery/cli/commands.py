"""The properties of every command that changes something, declared once: which runbook it runs, whether
it takes the target's lock, whether it is destructive (asked first, refused without --yes when nobody can
answer) and whether it is journaled. `run_runbook` and the confirmations read this table; a command
that is not in it changes nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from recovery.cli.common import confirm_destructive, naming_target, require_named_target
from recovery.engine import Runbook


@dataclass(frozen=True)
class CommandProperties:
    command: str  # as the JSON envelope names it
    runbook: str | None  # the registered runbook it runs (None: several, or a run resumed)
    takes_lock: bool
    destructive: bool  # needs --yes in a non-interactive run
    journaled: bool


COMMANDS: Mapping[str, CommandProperties] = MappingProxyType(
    {
        item.command: item
        for item in (
            CommandProperties("backup run", "backup", takes_lock=True, destructive=False, journaled=True),
            CommandProperties("backup point", "backup", takes_lock=True, destructive=False, journaled=True),
            CommandProperties(
                "backup prune", "backup-prune", takes_lock=True, destructive=True, journaled=True
            ),
            CommandProperties(
                "backup realtime", "backup-realtime", takes_lock=True, destructive=False, journaled=True
            ),
            CommandProperties(
                "backup setup-archiving", "wal-archive", takes_lock=True, destructive=True, journaled=True
            ),
            CommandProperties("restore", "restore", takes_lock=True, destructive=True, journaled=True),
            CommandProperties(
                "restore prune-replaced",
                "restore-prune-replaced",
                takes_lock=True,
                destructive=True,
                journaled=True,
            ),
            CommandProperties("upgrade", "upgrade", takes_lock=True, destructive=True, journaled=True),
            CommandProperties("rollback", "rollback", takes_lock=True, destructive=True, journaled=True),
            CommandProperties("switchover", "switchover", takes_lock=True, destructive=True, journaled=True),
            CommandProperties("failover", "failover", takes_lock=True, destructive=True, journaled=True),
            CommandProperties("failback", "failback", takes_lock=True, destructive=True, journaled=True),
            CommandProperties("runs resume", None, takes_lock=True, destructive=True, journaled=True),
        )
    }
)


def properties(command: str) -> CommandProperties:
    try:
        return COMMANDS[command]
    except KeyError:
        raise AssertionError(
            f"command {command!r} changes something but is not in the command table"
        ) from None


def check_runbook(command: str | CommandProperties, runbook: Runbook) -> CommandProperties:
    """The command's properties (from the table when named), checked against the runbook it is about to
    run (a mismatch is a bug)."""
    found = command if isinstance(command, CommandProperties) else properties(command)
    if found.runbook is not None and found.runbook != runbook.name:
        raise AssertionError(f"command {command!r} runs runbook {runbook.name!r}, not {found.runbook!r}")
    if found.takes_lock != runbook.mutating:
        raise AssertionError(
            f"command {command!r}: the table and runbook {runbook.name!r} disagree on the lock"
        )
    return found


def confirm_command(command: str | CommandProperties, what: str, yes: bool) -> None:
    """Ask before a destructive command (`what` names what it destroys; the question adds the target it
    will change); nothing for the others. A destructive command on the implicit default target is
    refused, even with --yes, when another target is known (`require_named_target`)."""
    found = command if isinstance(command, CommandProperties) else properties(command)
    if found.destructive:
        require_named_target(found.command)
        confirm_destructive(naming_target(what), yes)
