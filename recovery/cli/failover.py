"""`recovery switchover`, `recovery failover`, `recovery failback`: the site runbooks, parsed and run.

Exit codes: 0 done, 3 refused (the decision's sentence says why; nothing was changed), 4 another run
holds the target's lock, 5 the move happened but its verification failed, 8 --yes missing in a
non-interactive run, 1 a step failed (resume with `recovery runs resume RUN`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from recovery.cli.common import DryRunOpt, OutputFormat, OutputOpt, TargetOpt, YesOpt
from recovery.cli.runs import run_runbook
from recovery.runbooks.failback import failback_runbook
from recovery.runbooks.failover import (
    failover_params,
    failover_runbook,
    switchover_params,
    switchover_runbook,
)
from recovery.targets import load_target

ToOpt = Annotated[str | None, typer.Option("--to", help="the site to move the writer to: primary or standby")]


def switchover_command(
    to: ToOpt = None,
    target: TargetOpt = "lab",
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Planned move of the writable database to the other site, losing nothing: fence, wait for replay,
    promote, open, move traffic, verify."""
    loaded = load_target(target)
    runbook = switchover_runbook(loaded, switchover_params(to))
    run_runbook(loaded, runbook, command="switchover", output=output, dry_run=dry_run, yes=yes)


def failover_command(
    to: ToOpt = None,
    max_data_loss: Annotated[
        float | None,
        typer.Option(
            "--max-data-loss",
            help="seconds of writes you accept to lose (default: the target's RPO objective)",
        ),
    ] = None,
    target: TargetOpt = "lab",
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Unplanned promotion of the standby when the writer's site is lost: fence it by every means,
    promote, open, move traffic, verify, record what was lost."""
    loaded = load_target(target)
    runbook = failover_runbook(loaded, failover_params(to, max_data_loss))
    run_runbook(loaded, runbook, command="failover", output=output, dry_run=dry_run, yes=yes)


def failback_command(
    switch_back: Annotated[
        bool, typer.Option("--switch-back", help="then switch the writer back to the rebuilt site")
    ] = False,
    target: TargetOpt = "lab",
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    output: OutputOpt = OutputFormat.text,
) -> None:
    """Rebuild the old writer as a standby after carrying over what it acknowledged after the split;
    with --switch-back, then switch over to it."""
    loaded = load_target(target)
    run_runbook(
        loaded, failback_runbook(loaded, {}), command="failback", output=output, dry_run=dry_run, yes=yes
    )
    if switch_back and not dry_run:
        back = load_target(target)  # the site record changed: read it again
        runbook = switchover_runbook(back, switchover_params(None))
        run_runbook(back, runbook, command="switchover", output=output, yes=True)
