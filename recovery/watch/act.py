"""What the watch does when it decides to fail over: run the failover runbook's command, from here only.

The failover runbook is a command of its own (`recovery failover --yes --target T`); the watch starts it
as a separate process, the way a person would, so the runbook takes the target's lock, journals, and
announces its start and outcome itself, and a watch that dies does not take the failover with it. Its
output goes to a log file beside the watch's state; `recovery runs list` shows the run.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Started:
    pid: int
    argv: tuple[str, ...]
    log: Path


def recovery_argv(*words: str) -> tuple[str, ...]:
    """A `recovery` command line run by this very interpreter (no PATH lookup): the failover runbook
    here, the watch itself where the lab starts it."""
    return (sys.executable, "-m", "recovery.cli.main", *words)


def failover_argv(target_ref: str) -> tuple[str, ...]:
    """The command line of the failover runbook for the target a person names `target_ref`."""
    return recovery_argv("failover", "--yes", "--target", target_ref)


def failover_command(target_ref: str) -> str:
    """The same command as a person types it (for messages)."""
    return f"recovery failover --yes --target {target_ref}"


def start_failover(target_ref: str, log: Path) -> Started:
    """Start the failover runbook in its own session; never waits for it."""
    argv = failover_argv(target_ref)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Started(process.pid, argv, log)
