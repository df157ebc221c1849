"""`recovery backup setup-archiving` and `recovery backup realtime`: what the watch's schedule does for
realtime backups, on demand and on any target.

Command functions `recovery/cli/backup.py` registers; they parse, build the runbook and run it.
"""

from __future__ import annotations

from recovery.cli.common import DryRunOpt, OutputFormat, OutputOpt, TargetOpt, YesOpt
from recovery.cli.runs import run_runbook
from recovery.runbooks.realtime_backup import realtime_runbook, wal_archive_runbook
from recovery.targets import load_target


def setup_archiving(
    target: TargetOpt = "lab",
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Turn on WAL archiving on the primary's database host (playbooks/wal-archive.yml); may restart it."""
    loaded = load_target(target)
    run_runbook(
        loaded,
        wal_archive_runbook(loaded, {}),
        command="backup setup-archiving",
        output=output,
        dry_run=dry_run,
        yes=yes,
    )


def realtime(
    target: TargetOpt = "lab",
    dry_run: DryRunOpt = False,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Take a realtime base backup of orders and transactions now, into both copies, verified."""
    loaded = load_target(target)
    run_runbook(
        loaded, realtime_runbook(loaded, {}), command="backup realtime", output=output, dry_run=dry_run
    )
